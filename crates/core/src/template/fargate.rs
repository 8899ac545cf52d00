//! Fargate's task sizes: CPU and memory in either of AWS's forms, checked against AWS's table.

use serde_json::{Map, Value};

use super::checks::{At, Problems};

/// The task's CPU units and memory MiB, each checked against its own field; `None` with the
/// problems said when either is missing, unreadable or not a Fargate size.
pub(super) fn size(
    at: &At<'_>,
    body: &Map<String, Value>,
    problems: &mut Problems,
) -> Option<(u32, u32)> {
    let cpu = match body.get("cpu").map(parse_cpu) {
        None => Err("required at task level for Fargate (e.g. \"256\" or \"0.25 vCPU\")"),
        Some(None) => Err("expected CPU units (\"256\") or vCPU (\"0.25 vCPU\")"),
        Some(Some(cpu)) => Ok(cpu),
    };
    let memory = match body.get("memory").map(parse_memory) {
        None => Err("required at task level for Fargate (e.g. \"512\" or \"1 GB\")"),
        Some(None) => Err("expected MiB (\"512\") or GB (\"1 GB\")"),
        Some(Some(memory)) => Ok(memory),
    };
    if let Err(why) = cpu {
        problems.push(at.err("cpu", why.into()));
    }
    if let Err(why) = memory {
        problems.push(at.err("memory", why.into()));
    }
    let (cpu, memory) = (cpu.ok()?, memory.ok()?);
    // A CPU value Fargate does not have is the cpu field's fault, whatever the memory.
    let field = if FARGATE_CPU.contains(&cpu) {
        "memory"
    } else {
        "cpu"
    };
    match check_fargate_size(cpu, memory) {
        Ok(()) => Some((cpu, memory)),
        Err(why) => {
            problems.push(at.err(field, why));
            None
        }
    }
}

/// CPU units (`256`, `"256"`) or vCPU (`"0.25 vCPU"`).
pub(super) fn parse_cpu(v: &Value) -> Option<u32> {
    parse_size(v, &["vCPU", "vcpu"])
}

/// MiB (`512`, `"512"`) or GB (`"1 GB"`).
pub(super) fn parse_memory(v: &Value) -> Option<u32> {
    parse_size(v, &["GB", "gb"])
}

/// A whole number of the small unit, or a decimal of the large one (1,024 small units each).
fn parse_size(v: &Value, large: &[&str]) -> Option<u32> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => {
            let s = s.trim();
            match large.iter().find_map(|u| s.strip_suffix(u)) {
                Some(v) => {
                    let f: f64 = v.trim().parse().ok()?;
                    Some((f * 1024.0).round() as u32)
                }
                None => s.parse().ok(),
            }
        }
        _ => None,
    }
}

/// The CPU units Fargate offers (AWS's table below).
const FARGATE_CPU: [u32; 7] = [256, 512, 1024, 2048, 4096, 8192, 16384];

/// AWS's table of Fargate task sizes (CPU units → allowed memory in MiB).
pub fn check_fargate_size(cpu: u32, memory: u32) -> Result<(), String> {
    let (lo, hi, step): (u32, u32, u32) = match cpu {
        256 => {
            return if [512, 1024, 2048].contains(&memory) {
                Ok(())
            } else {
                Err(format!(
                    "{memory} MiB is not allowed with cpu 256; allowed: 512, 1024, 2048"
                ))
            }
        }
        512 => (1024, 4096, 1024),
        1024 => (2048, 8192, 1024),
        2048 => (4096, 16384, 1024),
        4096 => (8192, 30720, 1024),
        8192 => (16384, 61440, 4096),
        16384 => (32768, 122880, 8192),
        other => {
            return Err(format!(
            "cpu {other} is not a Fargate size; allowed: 256, 512, 1024, 2048, 4096, 8192, 16384"
        ))
        }
    };
    if memory >= lo && memory <= hi && (memory - lo) % step == 0 {
        Ok(())
    } else {
        Err(format!(
            "{memory} MiB is not allowed with cpu {cpu}; allowed: {lo} to {hi} in steps of {step}"
        ))
    }
}
