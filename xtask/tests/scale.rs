//! `xtask scale` on a small book: the book is what it says, every event
//! is applied, and the suppression list holds exactly the book's bounced
//! and unsubscribed addresses.

use xtask::scale::{events, health_events, run, Book};

#[test]
fn a_book_is_seeded_and_uneven() {
    let b = Book {
        leads: 2_000,
        campaigns: 20,
        seed: 7,
    };
    let (one, two) = (events(b), events(b));
    assert_eq!(one, two, "the same seed gives the same book");
    let mut per = [0usize; 21];
    for (c, _) in &one {
        per[*c] += 1;
    }
    // 1/H(20) ≈ 28 % in the first campaign, 1.4 % in the last.
    assert!((400..=720).contains(&per[1]), "{per:?}");
    assert!(per[20] < per[1] / 8, "{per:?}");
}

#[tokio::test]
async fn a_small_book_is_written_and_its_suppressions_listed() {
    let store = test_support::store::fresh_store().await;
    let endpoint = test_support::store::dynamodb().endpoint();
    let bare =
        test_support::store::bare_store_at(&endpoint, &test_support::store::unique("bare")).await;
    let b = Book {
        leads: 400,
        campaigns: 4,
        seed: 11,
    };
    let book = events(b);
    let mut want: Vec<String> = book
        .iter()
        .flat_map(|(_, e)| e)
        .filter(|v| {
            matches!(
                v["event_type"].as_str(),
                Some("EMAIL_BOUNCE" | "LEAD_UNSUBSCRIBED")
            )
        })
        .filter_map(|v| v["to_email"].as_str().map(str::to_owned))
        .collect();
    want.sort();
    assert!(!want.is_empty(), "the book suppresses someone");
    let f = run(&store, &bare, b, 8).await.expect("run");
    let health = health_events(b).len();
    assert_eq!(health, 3, "one account, two breaches");
    assert_eq!(
        f.events,
        book.iter().map(|(_, e)| e.len()).sum::<usize>() + health
    );
    assert_eq!(f.applied, f.events, "every event applied: {f:?}");
    let mut listed: Vec<String> = store
        .suppressed(None)
        .await
        .expect("suppressed")
        .iter()
        .filter_map(|i| i.get("lead_email")?.as_s().ok().cloned())
        .collect();
    listed.sort();
    assert_eq!(listed, want, "the suppression list is the book's");
    assert_eq!(f.suppressed, want.len());
    assert!(f.suppression_read_units > 0.0, "{f:?}");
    // The indexes' share is what the bare table did not consume: each
    // first open, click, reply, category and suppression, and the health
    // items; a repeat open writes none.
    assert!(
        f.index_write_units > 0.0 && f.index_write_units < f.write_units / 2.0,
        "{f:?}"
    );
}
