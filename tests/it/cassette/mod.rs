//! Recording (`ClientBuilder::record_to`, feature `record`): a tape is safe to read
//! at any moment and after any crash (`crash`), holds no secret however it is
//! spelled (`leak`), and replays byte for byte and chunk for chunk what was recorded
//! (`round_trip`). Replay and the fault tapes on their own are the
//! `laracopilot-mock` crate's tests.

mod crash;
mod leak;
mod round_trip;
