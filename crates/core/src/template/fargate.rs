//! Fargate's task sizes: CPU and memory in either of AWS's forms, checked against AWS's table.

use serde_json::{Map, Value};

use super::checks::At;
use super::TemplateError;

/// The task's CPU units and memory MiB, each checked against its own field.
pub(super) fn size(at: &At<'_>, body: &Map<String, Value>) -> Result<(u32, u32), TemplateError> {
    let cpu = body.get("cpu").ok_or_else(|| {
        at.err(
            "cpu",
            "required at task level for Fargate (e.g. \"256\" or \"0.25 vCPU\")".into(),
        )
    })?;
    let memory = body.get("memory").ok_or_else(|| {
        at.err(
            "memory",
            "required at task level for Fargate (e.g. \"512\" or \"1 GB\")".into(),
        )
    })?;
    let cpu = parse_cpu(cpu).ok_or_else(|| {
        at.err(
            "cpu",
            "expected CPU units (\"256\") or vCPU (\"0.25 vCPU\")".into(),
        )
    })?;
    let memory = parse_memory(memory)
        .ok_or_else(|| at.err("memory", "expected MiB (\"512\") or GB (\"1 GB\")".into()))?;
    // A CPU value Fargate does not have is the cpu field's fault, whatever the memory.
    let field = if FARGATE_CPU.contains(&cpu) {
        "memory"
    } else {
        "cpu"
    };
    check_fargate_size(cpu, memory).map_err(|p| at.err(field, p))?;
    Ok((cpu, memory))
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
