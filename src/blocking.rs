//! A blocking facade for build scripts, CLIs and CI jobs (feature `blocking`).
