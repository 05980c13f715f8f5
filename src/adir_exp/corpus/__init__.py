"""The image sets ``adir-make-data`` makes from registry packages: the embedded prior's corpus of natural photos
(``photos``, with Qt resource files read by ``rcc``) and the domain-shift study's sets (``domain_shift``, with
typeset pages rendered by ``pages``); docs/prior.md, docs/domain_shift.md."""
