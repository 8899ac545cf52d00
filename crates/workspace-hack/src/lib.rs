//! No code: the dependencies in `Cargo.toml` are the point (see the comment there).
