//! CloudWatch alarms: "CloudWatch Alarm State Change" from EventBridge, or an alarm action's
//! message delivered by SNS (`Records[].Sns`).

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::Deserialize;
use serde_json::Value;

use super::{Event, EventError, Source, ALARM_SNS_KIND};
use crate::alarm::{parse_time, AlarmChange, AlarmState};

/// The `detail` of "CloudWatch Alarm State Change" (what the agent reads).
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AlarmDetail {
    pub alarm_name: String,
    pub state: AlarmStateDetail,
    #[serde(default)]
    pub previous_state: Option<AlarmStateDetail>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct AlarmStateDetail {
    pub value: String,
    #[serde(default)]
    pub reason: Option<String>,
    pub timestamp: String,
}

/// The JSON an alarm action publishes to SNS. `AlarmDescription` is often null (which
/// aws_lambda_events' own type rejects), so only what the agent reads is typed.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct SnsAlarmMessage {
    pub alarm_name: String,
    pub new_state_value: String,
    #[serde(default)]
    pub old_state_value: Option<String>,
    #[serde(default)]
    pub new_state_reason: Option<String>,
    pub state_change_time: String,
    #[serde(default)]
    pub alarm_arn: Option<String>,
}

pub(super) fn parse(value: &Value, id: String, at: Source<'_>) -> Result<Event, EventError> {
    let ev: EventBridgeEvent<AlarmDetail> =
        crate::json::typed(value).map_err(|e| at.malformed_field(&e))?;
    at.require_id(&id)?;
    let d = ev.detail;
    at.short("detail.alarmName", &d.alarm_name)?;
    let state = state_of(at, "detail.state.value", &d.state.value)?;
    let previous = match &d.previous_state {
        Some(p) => Some(state_of(at, "detail.previousState.value", &p.value)?),
        None => None,
    };
    let at_time = parse_time(&d.state.timestamp)
        .ok_or_else(|| at.malformed("detail.state.timestamp", "is not a time"))?;
    Ok(Event::Alarms(vec![AlarmChange {
        id,
        alarm: d.alarm_name,
        arn: ev.resources.unwrap_or_default().into_iter().next(),
        state,
        previous,
        at: at_time,
        reason: crate::text::clipped(&d.state.reason.unwrap_or_default(), crate::text::MAX_REASON),
    }]))
}

pub(super) fn parse_sns(value: &Value) -> Result<Event, EventError> {
    let whole = Source {
        event: ALARM_SNS_KIND,
        id: "",
    };
    let records = value["Records"]
        .as_array()
        .ok_or_else(|| whole.malformed("Records", "must be a list of SNS records"))?;
    let mut changes = Vec::new();
    for (i, r) in records.iter().enumerate() {
        changes.push(sns_record(i, &r["Sns"])?);
    }
    Ok(Event::Alarms(changes))
}

fn sns_record(i: usize, sns: &Value) -> Result<AlarmChange, EventError> {
    let field = |f: &str| format!("Records[{i}].Sns.{f}");
    let id = sns["MessageId"].as_str().unwrap_or_default().to_owned();
    if id.is_empty() {
        let whole = Source {
            event: ALARM_SNS_KIND,
            id: "",
        };
        return Err(whole.malformed(&field("MessageId"), "is required to recognise redeliveries"));
    }
    let note = format!(" {id}");
    let at = Source {
        event: ALARM_SNS_KIND,
        id: &note,
    };
    // SNS gives MessageId no length limit; the id is remembered in the state document.
    at.short(&field("MessageId"), &id)?;
    let text = sns["Message"]
        .as_str()
        .ok_or_else(|| at.malformed(&field("Message"), "must be the alarm's JSON, as a string"))?;
    let message: Value = serde_json::from_str(text).map_err(|_| {
        at.malformed(
            &field("Message"),
            "is not JSON (a CloudWatch alarm notification)",
        )
    })?;
    let m: SnsAlarmMessage = crate::json::typed(&message).map_err(|e| {
        let path = match e.path.as_str() {
            "" => field("Message"),
            p => field(&format!("Message.{p}")),
        };
        at.malformed(&path, &e.problem)
    })?;
    let state = state_of(at, &field("Message.NewStateValue"), &m.new_state_value)?;
    let previous = match &m.old_state_value {
        Some(v) => Some(state_of(at, &field("Message.OldStateValue"), v)?),
        None => None,
    };
    let at_time = parse_time(&m.state_change_time)
        .ok_or_else(|| at.malformed(&field("Message.StateChangeTime"), "is not a time"))?;
    at.short(&field("Message.AlarmName"), &m.alarm_name)?;
    Ok(AlarmChange {
        id,
        alarm: m.alarm_name,
        arn: m.alarm_arn,
        state,
        previous,
        at: at_time,
        reason: crate::text::clipped(
            &m.new_state_reason.unwrap_or_default(),
            crate::text::MAX_REASON,
        ),
    })
}

fn state_of(at: Source<'_>, field: &str, v: &str) -> Result<AlarmState, EventError> {
    AlarmState::parse(v).ok_or_else(|| {
        at.malformed(
            field,
            &format!("`{v}` is not OK, ALARM or INSUFFICIENT_DATA"),
        )
    })
}
