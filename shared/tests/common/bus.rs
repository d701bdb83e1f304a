//! A bus in moto whose every event lands in a capture queue, and the
//! queue read back.

use super::{moto, unique};
use serde_json::{json, Value};
use smartlead::adapters::aws::eventbridge::EventBridgePublisher;
use smartlead::adapters::aws::local_sdk_config;

/// A queue in moto that receives what a bus or topic delivers.
pub async fn capture_queue() -> (smartlead::aws_sdk_sqs::Client, String, String) {
    let cfg = local_sdk_config(&moto().endpoint()).await;
    let sqs = smartlead::aws_sdk_sqs::Client::new(&cfg);
    let url = super::new_queue(&sqs, "capture").await;
    let arn = super::queue_arn(&sqs, &url).await;
    (sqs, url, arn)
}

pub async fn drain_capture(sqs: &smartlead::aws_sdk_sqs::Client, url: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let r = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let msgs = r.messages.unwrap_or_default();
        if msgs.is_empty() {
            return out;
        }
        for m in msgs {
            out.push(serde_json::from_str(m.body().unwrap()).unwrap());
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

/// A bus whose every event lands in a capture queue.
pub async fn bus() -> (EventBridgePublisher, smartlead::aws_sdk_sqs::Client, String) {
    let cfg = local_sdk_config(&moto().endpoint()).await;
    let eb = aws_sdk_eventbridge::Client::new(&cfg);
    let name = unique("bus");
    eb.create_event_bus().name(&name).send().await.unwrap();
    let (sqs, url, arn) = capture_queue().await;
    eb.put_rule()
        .name("all")
        .event_bus_name(&name)
        .event_pattern(json!({"source": ["smartlead.webhooks"]}).to_string())
        .send()
        .await
        .unwrap();
    eb.put_targets()
        .rule("all")
        .event_bus_name(&name)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("capture")
                .arn(arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    (
        EventBridgePublisher {
            client: eb,
            bus: name,
        },
        sqs,
        url,
    )
}
