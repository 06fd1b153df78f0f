"""Lessons: markdown files that switch the lab's settings, act on it and check what it shows.

`catalog` reads and checks lesson files, `settings` checks a lesson's lab with
each part's own schema, `directives` and `claims` are the small languages of
the `do`, `predict` and `expect` blocks, `render` turns a lesson into safe HTML,
`snippets` writes the same setting as nginx and HAProxy config, and `runner`
carries out a lesson's experiments against a real lab (the tests use it).

Nothing is imported here: `lb-lab` builds its parser (and every lab child
process starts) without loading the markdown and YAML libraries.
"""
