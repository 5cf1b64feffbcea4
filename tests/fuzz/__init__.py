"""Coverage-guided fuzzing of sealstore's parsers: targets, seed corpora and reproducers."""
