//! `xtask scale` on a small book: the book is what it says, every event
//! is applied, and the suppression list holds exactly the book's bounced
//! and unsubscribed leads.

use xtask::scale::{events, run, Book};

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
    let b = Book {
        leads: 400,
        campaigns: 4,
        seed: 11,
    };
    let book = events(b);
    let want = book
        .iter()
        .filter(|(_, e)| {
            e.iter().any(|v| {
                matches!(
                    v["event_type"].as_str(),
                    Some("EMAIL_BOUNCE" | "LEAD_UNSUBSCRIBED")
                )
            })
        })
        .count();
    let f = run(&store, b, 8).await.expect("run");
    assert_eq!(f.events, book.iter().map(|(_, e)| e.len()).sum::<usize>());
    assert!(want > 0, "the book suppresses someone");
    assert_eq!(f.suppressed, want);
    assert!(f.suppression_read_units > 0.0, "{f:?}");
    // Every event wrote at least its item.
    assert!(f.write_units >= f.events as f64, "{f:?}");
}
