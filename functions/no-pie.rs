//! The build script of every Lambda function (each `Cargo.toml` names this file): link the
//! function as a position-dependent executable.
//!
//! Why: a position-independent executable is relocated by the dynamic loader at every start,
//! and a binary that links the AWS SDK carries some 46,000 relative relocations (1.1 MiB of
//! `.rela.dyn`: vtables, static string tables, endpoint rules). Measured on the release
//! `ecr-push` (issue 20): exec → first Runtime API request 2.45 → 1.50 ms median (hello-world
//! `lambda_runtime`: 1.28 ms), peak RSS at ready 10.6 → 9.0 MiB. The price is that the
//! executable's own code is not at a random address (shared libraries, heap and stacks still
//! are); a function reads events from EventBridge, ECS and CodePipeline and its config from S3,
//! and its crates forbid `unsafe`. The CLI, which reads what people type, stays PIE.
//! `-C relocation-model=static` for the whole build is not an option: crc-fast (the S3 SDK's
//! checksums) also builds a cdylib, which cannot be linked from non-PIC code.

fn main() {
    // The objects stay PIC; only the final link is position-dependent (the linker resolves the
    // relative relocations itself). GNU ld, lld and zig's (cargo-lambda's) drivers all take it.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    println!("cargo:rerun-if-changed=../no-pie.rs");
}
