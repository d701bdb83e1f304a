//! What goes to the terminal besides plain lines: JSON, a spinner.

use serde_json::Value;
use std::time::Duration;

pub fn print(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// A spinner on stderr (drawn only on a terminal), ticking by itself.
pub(crate) fn spinner(message: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(message.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}
