"""The presenter token: right one accepted, wrong or missing refused, no length shortcut."""

from lab.web import presenter


def test_the_token_itself_is_accepted() -> None:
    token = presenter.new_token()
    assert presenter.holds(token, token)


def test_wrong_missing_and_prefix_tokens_are_refused() -> None:
    token = presenter.new_token()
    assert not presenter.holds(None, token)
    assert not presenter.holds("", token)
    assert not presenter.holds(token[:-1], token)
    assert not presenter.holds(token + "x", token)
    assert not presenter.holds(presenter.new_token(), token)


def test_comparison_runs_over_fixed_length_digests(monkeypatch) -> None:
    seen: list[tuple[int, int]] = []
    real = presenter.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(presenter.hmac, "compare_digest", spy)
    token = presenter.new_token()
    presenter.holds("x", token)
    presenter.holds("y" * 500, token)
    assert seen == [(32, 32), (32, 32)]  # a wrong length never reaches an early return


def test_classroom_access_commands_only_with_the_presenter_cookie() -> None:
    from lab.web.access import Access

    token = presenter.new_token()
    access = Access.loopback().classroom(token)
    viewer = {"REMOTE_ADDR": "127.0.0.1"}
    forged = {"REMOTE_ADDR": "127.0.0.1", "HTTP_COOKIE": f"{presenter.COOKIE}=nope"}
    holder = {"REMOTE_ADDR": "10.0.0.9", "HTTP_COOKIE": f"a=b; {presenter.COOKIE}={token}"}
    assert "only the presenter" in (access.refusal(viewer) or "")
    assert access.refusal(forged) is not None
    assert access.refusal(holder) is None
    assert Access.loopback().refusal(viewer) is None  # no classroom: as today
