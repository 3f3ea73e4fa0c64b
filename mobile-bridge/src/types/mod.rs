//! The records the app sees and sends: typed mirrors of the engine's, for Kotlin, Swift and
//! Python. Times are RFC 3339 text, as on the wire. Inputs turn into the fields of a pushed
//! mutation (the HTTP API's bodies); the engine checks them.

mod assets;
mod gate;
mod inputs;
mod labor;
mod status;
mod tabs;

pub use assets::*;
pub use gate::*;
pub use inputs::*;
pub use labor::*;
pub use status::*;
pub use tabs::*;
