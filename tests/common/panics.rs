//! Makes a broker's panics fail the test that caused them. A panic in a connection task does not
//! reach the test: tokio catches it, the client sees its socket close, and a test that expected
//! an error may even pass. A process-wide hook records every panic raised outside the tests' own
//! files; each test broker checks the record when it is dropped.

use std::panic::PanicHookInfo;
use std::sync::{Mutex, Once};

/// Panics raised outside `tests/`: the broker's (or a client library's).
static RECORDED: Mutex<Vec<String>> = Mutex::new(Vec::new());
static HOOK: Once = Once::new();

/// Checks, when dropped, that nothing outside the tests panicked while the process ran.
pub struct PanicCheck(());

impl PanicCheck {
    pub fn install() -> Self {
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if !raised_by_test_code(info) {
                    let at = info.location().map(|l| l.to_string()).unwrap_or_default();
                    let thread = std::thread::current().name().unwrap_or("?").to_owned();
                    let entry = format!("{} at {at} on thread {thread}", message(info));
                    RECORDED
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(entry);
                }
                previous(info);
            }));
        });
        Self(())
    }
}

impl Drop for PanicCheck {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let recorded = RECORDED.lock().unwrap_or_else(|e| e.into_inner());
        assert!(
            recorded.is_empty(),
            "the broker panicked during this test binary's run: {recorded:#?}"
        );
    }
}

/// Assertions and `expect`s in a test point into `tests/`; the broker's panics point into `src/`
/// or a dependency.
fn raised_by_test_code(info: &PanicHookInfo<'_>) -> bool {
    info.location()
        .is_some_and(|l| l.file().starts_with("tests/"))
}

fn message(info: &PanicHookInfo<'_>) -> String {
    if let Some(s) = info.payload().downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = info.payload().downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic".to_owned()
    }
}
