//! `AddWebhook` without a secret (generated, shown once) and
//! `TestWebhook` (a signed test event to a receiver on 127.0.0.1).

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

fn spec(name: &str, url: &str, secret: &str) -> pb::WebhookSpec {
    pb::WebhookSpec { name: name.into(), url: url.into(), secret: secret.into(), ..Default::default() }
}

#[tokio::test]
async fn a_webhook_added_without_a_secret_gets_one_shown_once() {
    let (api, cluster) = api();
    let add = |key: &str, secret: &str| pb::AddWebhookRequest {
        mutation: mutation(key),
        spec: Some(spec("oncall", "https://hooks.example.com/x", secret)),
    };
    let reply = api.add_webhook(req(add("w1", ""))).await.unwrap().into_inner();
    let generated = reply.generated_secret.clone();
    assert!(generated.starts_with("whsec_") && generated.len() > 40, "{generated}");
    assert!(reply.secret_set);
    assert!(reply.spec.unwrap().secret.is_empty(), "the spec read back has no secret");
    let stored = cluster.read(|s| s.webhooks()[&WebhookId(reply.id)].spec.secret.0.clone());
    assert_eq!(stored, generated, "the secret shown is the one that signs");

    // The same key again: applied already, and the secret is not shown twice.
    let replay = api.add_webhook(req(add("w1", ""))).await.unwrap_err();
    assert_eq!(replay.code(), Code::FailedPrecondition);
    assert!(replay.message().contains("shown only in the first reply"), "{}", replay.message());
    assert!(!replay.message().contains(&generated));

    // A given secret is kept and never echoed.
    let given = pb::AddWebhookRequest {
        mutation: mutation("w2"),
        spec: Some(spec("ops", "https://hooks.example.com/y", "0123456789abcdef")),
    };
    let reply = api.add_webhook(req(given.clone())).await.unwrap().into_inner();
    assert!(reply.generated_secret.is_empty());
    let again = api.add_webhook(req(given)).await.unwrap().into_inner();
    assert_eq!(again.id, reply.id, "a retry with a given secret replays");
}

/// Answers one HTTP request with `status` and returns what it received.
async fn one_shot_receiver(status: u16) -> (String, tokio::task::JoinHandle<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            received.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&received).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                    })
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                if body.len() >= length {
                    break;
                }
            }
            if n == 0 {
                break;
            }
        }
        let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        stream.write_all(answer.as_bytes()).await.unwrap();
        String::from_utf8_lossy(&received).to_string()
    });
    (url, task)
}

#[tokio::test]
async fn test_webhook_sends_a_signed_test_event_and_reports_the_answer() {
    let (api, _) = api();
    let (url, received) = one_shot_receiver(204).await;
    let hook = pb::WebhookSpec {
        allow_private: true,
        ..spec("local", &url, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    };
    api.add_webhook(req(pb::AddWebhookRequest { mutation: mutation("w1"), spec: Some(hook) })).await.unwrap();

    let reply = api
        .test_webhook(req(pb::TestWebhookRequest { id_or_name: "local".into() }))
        .await
        .unwrap()
        .into_inner();
    assert!(reply.delivered, "{reply:?}");
    assert_eq!(reply.status_code, 204);
    assert!(reply.error.is_empty());
    assert!(reply.message_id.starts_with("msg_vantage_test_"), "{}", reply.message_id);
    assert_eq!((reply.name.as_str(), reply.url.as_str()), ("local", url.as_str()));
    let request = received.await.unwrap();
    assert!(request.starts_with("POST /hook HTTP/1.1\r\n"), "{request}");
    assert!(request.contains(&format!("webhook-id: {}", reply.message_id)), "{request}");
    assert!(request.contains("webhook-signature: v1,"), "{request}");
    assert!(request.contains(r#""type":"test""#), "{request}");
}

#[tokio::test]
async fn test_webhook_reports_refusals_and_unknown_names() {
    let (api, _) = api();
    let (url, _received) = one_shot_receiver(500).await;
    let port = url.split(':').nth(2).unwrap().split('/').next().unwrap().to_string();
    // Through a name, the guard refuses loopback after resolution.
    let guarded = spec("guarded", &format!("http://localhost:{port}/hook"), "0123456789abcdef");
    api.add_webhook(req(pb::AddWebhookRequest { mutation: mutation("w1"), spec: Some(guarded) }))
        .await
        .unwrap();
    let reply = api
        .test_webhook(req(pb::TestWebhookRequest { id_or_name: "guarded".into() }))
        .await
        .unwrap()
        .into_inner();
    assert!(!reply.delivered);
    assert_eq!(reply.status_code, 0, "nothing was sent");
    assert!(reply.error.contains("refused by the SSRF guard"), "{}", reply.error);

    let allowed = pb::WebhookSpec { allow_private: true, ..spec("allowed", &url, "0123456789abcdef") };
    api.add_webhook(req(pb::AddWebhookRequest { mutation: mutation("w2"), spec: Some(allowed) }))
        .await
        .unwrap();
    let reply = api
        .test_webhook(req(pb::TestWebhookRequest { id_or_name: "allowed".into() }))
        .await
        .unwrap()
        .into_inner();
    assert!(!reply.delivered);
    assert_eq!(reply.status_code, 500);
    assert_eq!(reply.error, "the receiver answered 500 Internal Server Error");

    let unknown =
        api.test_webhook(req(pb::TestWebhookRequest { id_or_name: "nope".into() })).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}
