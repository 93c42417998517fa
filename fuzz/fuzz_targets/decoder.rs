//! The raw event-stream decoder, under the input's own chunking: no panic, no frame
//! over the cap, silence after `TooLarge`, the same frames whatever the chunking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    laracopilot_fuzz::check_decoder(data);
});
