//! The full bytes -> typed events path (`EventReader`): no panic, exactly one
//! terminal item and nothing after it, project ids carried, the same items whatever
//! the chunking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    laracopilot_fuzz::check_event_reader(data);
});
