//! What a release binary is made of, by kind of section: its code, its read-only data, its
//! unwind tables, its data. Read from the ELF section headers with the `object` crate.

use std::path::Path;

use anyhow::{Context, Result};
use object::elf::{SHF_EXECINSTR, SHF_WRITE, SHT_NOBITS};
use object::read::elf::{ElfFile64, FileHeader, SectionHeader};
use object::Endianness;

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

pub(crate) fn composition(binary: &Path) -> Result<Composition> {
    let bytes = std::fs::read(binary).with_context(|| binary.display().to_string())?;
    let mut c = Composition::default();
    let mut accounted = 0;
    for (name, kind, flags, size) in sections(&bytes)? {
        if kind == SHT_NOBITS {
            continue; // .bss takes no room in the file
        }
        accounted += size;
        let slot = if flags & u64::from(SHF_EXECINSTR) != 0 {
            &mut c.code
        } else if name == ".rodata" {
            &mut c.rodata
        } else if name.starts_with(".eh_frame") || name == ".gcc_except_table" {
            &mut c.unwind
        } else if flags & u64::from(SHF_WRITE) != 0 {
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
    let file = ElfFile64::<Endianness>::parse(b).context("not an ELF64 file")?;
    let (header, e) = (file.elf_header(), file.endian());
    let table = header.sections(e, b)?;
    let mut out = Vec::new();
    for s in table.iter().skip(1) {
        let name = String::from_utf8_lossy(table.section_name(e, s)?).into_owned();
        out.push((name, s.sh_type(e), s.sh_flags(e), s.sh_size(e)));
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
