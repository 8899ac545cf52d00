//! The incident path of a native strategy in `cargo xtask bench`: a "CloudWatch Alarm State
//! Change" during a blue/green deployment, through the `alarm` dispatch, to
//! StopServiceDeployment (ECS then rolls back itself). The emulator implements neither
//! ListServiceDeployments nor StopServiceDeployment, so this runs over the core's in-memory
//! ports (`harbormaster_core::memory`, the scenario tests' ECS): the clock measures the agent's
//! own work, with no network, and the calls it makes are counted by the same ports.

use std::time::Instant;

use anyhow::{ensure, Result};
use harbormaster_core::memory::MemoryPorts;
use harbormaster_core::testing::scenario::{now, send, tick_once, CLUSTER};
use harbormaster_core::testing::{alarm_event, push_event};

use super::{counted_ops, percentile};

const ROUNDS: usize = 20;
const ALARM: &str = "booking-dev-web-5xx";

/// One blue/green service with its alarm, a first release done and a second in flight.
fn in_flight() -> (MemoryPorts, harbormaster_core::Bundle) {
    let (ports, b) = harbormaster_core::testing::native::blue_green_with_alarms();
    send(&ports, &b, &push_event("p1", "main-1", 'a', 1));
    ports.complete(CLUSTER, "web");
    tick_once(&ports, &b);
    send(&ports, &b, &push_event("p2", "main-2", 'b', 2));
    (ports, b)
}

/// Median and max ms from the alarm event to StopServiceDeployment done, and the calls made.
pub(crate) fn native_rounds() -> Result<String> {
    let mut ms = Vec::new();
    let mut calls = Vec::new();
    for round in 0..ROUNDS {
        let (ports, b) = in_flight();
        ports.with(|w| w.calls.clear());
        let event = alarm_event(&format!("al-{round}"), ALARM, ("OK", "ALARM"), now(&ports));
        let start = Instant::now();
        send(&ports, &b, &event);
        ms.push(start.elapsed().as_secs_f64() * 1000.0);
        ensure!(
            ports.count("StopServiceDeployment") == 1,
            "the alarm did not stop the deployment"
        );
        calls = ports.with(|w| w.calls.clone());
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    Ok(format!(
        "| measure | value |\n| --- | --- |\n\
         | alarm event → StopServiceDeployment done (blue/green in flight), in-memory ports, median of {ROUNDS} (min {:.2}, max {:.2}) | {:.2} ms |\n\
         | port calls of the alarm's dispatch | {} |\n\
         | calls | {} |\n",
        ms[0],
        ms[ms.len() - 1],
        percentile(&ms, 0.5),
        calls.len(),
        counted_ops(calls.iter().map(String::as_str))
    ))
}

#[cfg(test)]
mod tests {
    /// Every round's alarm stops the deployment in flight (the bench fails otherwise).
    #[test]
    fn each_round_stops_the_blue_green_deployment_in_flight() {
        let table = super::native_rounds().unwrap();
        assert!(table.contains("StopServiceDeployment ×1"), "{table}");
    }
}
