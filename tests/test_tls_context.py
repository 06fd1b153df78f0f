"""The tls settings checked as a config is applied: each bad file or combination is a
ConfigError naming its field (lab.balancer.tls_context, tls_config.check_tls)."""

from __future__ import annotations

import pytest
from tls_helpers import make_pems, tls_settings

from lab.balancer.config import from_dict
from lab.balancer.settings import ConfigError


@pytest.fixture
def pems(tmp_path):
    return make_pems(tmp_path)


def refused(**data) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        from_dict(data)
    return caught.value


def test_terminate_needs_layer_7(pems):
    error = refused(mode="tcp", tls=tls_settings(pems))
    assert error.field == "tls.mode"
    assert "mode http" in error.message


def test_terminate_needs_both_files(pems):
    assert refused(tls={"mode": "terminate", "key": str(pems.key)}).field == "tls.certificate"
    assert refused(tls={"mode": "terminate", "certificate": str(pems.certificate)}).field == (
        "tls.key"
    )


def test_a_file_that_is_not_a_certificate_or_not_a_key(pems, tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a PEM at all\n")
    error = refused(tls=tls_settings(pems, certificate=str(junk)))
    assert error.field == "tls.certificate"
    assert "holds no PEM certificate" in error.message
    error = refused(tls=tls_settings(pems, key=str(junk)))
    assert error.field == "tls.key"
    assert "holds no PEM private key" in error.message


def test_a_key_from_another_pair(pems, tmp_path):
    other = make_pems(tmp_path, "other")
    error = refused(tls=tls_settings(pems, key=str(other.key)))
    assert str(error).startswith("tls.key: the key does not match the certificate")


def test_re_encryption_needs_termination_and_a_ca(pems):
    assert refused(tls={"upstream": True}).field == "tls.upstream"
    assert refused(tls=tls_settings(pems, upstream=True)).field == "tls.upstream_ca"
    config = from_dict({"tls": tls_settings(pems, upstream=True, upstream_ca=str(pems.ca))})
    assert config.tls.upstream


def test_a_good_pair_loads_with_its_minimum_version(pems):
    from lab.balancer.tls_context import contexts_for

    config = from_dict({"tls": tls_settings(pems, min_version="1.3")})
    server = contexts_for(config.tls).server
    assert server is not None
    assert server.minimum_version.name == "TLSv1_3"
