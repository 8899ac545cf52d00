//! What a release binary is made of, by kind of section: its code, its read-only data, its
//! unwind tables, its data. Read from the ELF64 section headers (a few fields; a crate for
//! that is more than the bench needs).

use std::path::Path;

use anyhow::{bail, Context, Result};

/// Bytes of a binary's allocated sections, by what they hold.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Composition {
    /// `.text` and the other executable sections.
    pub code: u64,
    /// `.rodata`: string tables, endpoint rules, constants.
    pub rodata: u64,
    /// `.eh_frame`, `.eh_frame_hdr`, `.gcc_except_table`: what unwinding a panic reads.
    pub unwind: u64,
    /// Writable and relocated data (`.data`, `.data.rel.ro`, `.got`, …).
    pub data: u64,
    /// The rest: dynamic linking, relocations, headers.
    pub other: u64,
}

const SHF_WRITE: u64 = 1;
const SHF_EXECINSTR: u64 = 4;
const SHT_NOBITS: u32 = 8;

pub(crate) fn composition(binary: &Path) -> Result<Composition> {
    let bytes = std::fs::read(binary).with_context(|| binary.display().to_string())?;
    let mut c = Composition::default();
    let mut accounted = 0;
    for (name, kind, flags, size) in sections(&bytes)? {
        if kind == SHT_NOBITS {
            continue; // .bss takes no room in the file
        }
        accounted += size;
        let slot = if flags & SHF_EXECINSTR != 0 {
            &mut c.code
        } else if name == ".rodata" {
            &mut c.rodata
        } else if name.starts_with(".eh_frame") || name == ".gcc_except_table" {
            &mut c.unwind
        } else if flags & SHF_WRITE != 0 {
            &mut c.data
        } else {
            &mut c.other
        };
        *slot += size;
    }
    c.other += (bytes.len() as u64).saturating_sub(accounted);
    Ok(c)
}

/// (name, type, flags, size) of each section.
fn sections(b: &[u8]) -> Result<Vec<(String, u32, u64, u64)>> {
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 || b[5] != 1 {
        bail!("not a little-endian ELF64 file");
    }
    let u16_at = |o: usize| -> Result<u64> {
        let s = b.get(o..o + 2).context("truncated ELF")?;
        Ok(u16::from_le_bytes([s[0], s[1]]) as u64)
    };
    let u32_at = |o: usize| -> Result<u64> {
        let s = b.get(o..o + 4).context("truncated ELF")?;
        Ok(u32::from_le_bytes(s.try_into()?) as u64)
    };
    let u64_at = |o: usize| -> Result<u64> {
        let s = b.get(o..o + 8).context("truncated ELF")?;
        Ok(u64::from_le_bytes(s.try_into()?))
    };
    let (shoff, shentsize) = (u64_at(0x28)? as usize, u16_at(0x3A)? as usize);
    let (shnum, shstrndx) = (u16_at(0x3C)? as usize, u16_at(0x3E)? as usize);
    let header = |i: usize| shoff + i * shentsize;
    let names_at = u64_at(header(shstrndx) + 0x18)? as usize;
    let mut out = Vec::with_capacity(shnum);
    for i in 1..shnum {
        let h = header(i);
        let name_at = names_at + u32_at(h)? as usize;
        let name = b
            .get(name_at..)
            .and_then(|s| s.split(|&c| c == 0).next())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .unwrap_or_default();
        out.push((
            name,
            u32_at(h + 4)? as u32,
            u64_at(h + 8)?,
            u64_at(h + 0x20)?,
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This test's own executable: its parts add up to its size, and it has code and data.
    #[test]
    fn the_parts_of_a_binary_add_up_to_its_size() {
        let me = std::env::current_exe().unwrap();
        let c = composition(&me).unwrap();
        let total = c.code + c.rodata + c.unwind + c.data + c.other;
        assert_eq!(total, std::fs::metadata(&me).unwrap().len());
        assert!(
            c.code > 0 && c.rodata > 0 && c.unwind > 0 && c.data > 0,
            "{c:?}"
        );
        assert!(composition(Path::new("Cargo.toml")).is_err());
    }
}
