//! `cargo xtask emulator`: the local emulator in the foreground, with the exports that point
//! the AWS CLI, the SDK and harbormaster at it.

use std::time::Duration;

use anyhow::Result;
use harbormaster_testkit::{Emulator, MINISTACK};

pub(crate) fn emulator() -> Result<()> {
    let emu = Emulator::start()?;
    println!("{MINISTACK} listening on {}", emu.endpoint);
    println!("\nexport these to point the AWS CLI, the SDK and harbormaster at it:");
    for (k, v) in emu.env() {
        println!("export {k}={v}");
    }
    println!("\nCtrl-C stops it.");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
