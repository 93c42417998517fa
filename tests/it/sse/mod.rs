//! The event-stream decoder under any input (feature `__internal`, which exposes
//! its internals): the same events as `eventsource-stream` wherever both must agree
//! (`differential`), properties over generated events and arbitrary bytes
//! (`properties`), and the inputs the fuzz targets found (`fuzz_regressions`).

mod differential;
mod fuzz_regressions;
mod properties;
