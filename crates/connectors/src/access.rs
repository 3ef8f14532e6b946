//! What a connector touches outside the process, as its spec says: files it reads,
//! directories it writes, object-store locations, hosts it connects to and client
//! properties it hands to a library. A server checks these against what its operator
//! allows before it runs a job a client sent; each connector states its own.

/// One thing a connector touches, with the spec field that says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accessed {
    /// The spec field (e.g. `sources[0] (id 'in').path`).
    pub at: String,
    /// What it touches.
    pub access: Access,
}

/// What kind of place a spec field names: the field's value is resolved to an absolute
/// path (or a canonical `s3://` location) once, checked, and written back, so the
/// connector opens exactly what was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// A file that is read.
    ReadFile,
    /// A directory below which files are created and written.
    WriteDir,
    /// An objects location (a directory, `file:///…` or `s3://…`), written when `writes`.
    Objects {
        /// Whether objects are written there.
        writes: bool,
    },
}

/// A spec field that names a place, borrowed so it can be resolved in place.
#[derive(Debug)]
pub struct PlaceField<'a> {
    /// The spec field (e.g. `sinks[0] (id 'out').path`).
    pub at: String,
    /// What kind of place it names.
    pub place: Place,
    /// The field's value.
    pub value: &'a mut String,
}

impl Place {
    /// This place with `value` as what a connector touches.
    pub fn access(self, value: String) -> Access {
        match self {
            Place::ReadFile => Access::ReadFile(value),
            Place::WriteDir => Access::WriteDir(value),
            Place::Objects { writes } => Access::Location { url: value, writes },
        }
    }
}

/// What a connector touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Reads the file at this path (relative to the job's base directory).
    ReadFile(String),
    /// Reads this environment variable of the process that runs the connector (a
    /// secret given as `${env:NAME}`).
    ReadEnv {
        /// The variable's name.
        name: String,
    },
    /// Creates and writes files below this directory.
    WriteDir(String),
    /// Reads (or, with `writes`, writes) objects at a location: a local directory,
    /// `file://…`, or `s3://…` (whose endpoint and credentials the process's
    /// environment sets, not the spec).
    Location {
        /// The location as written.
        url: String,
        /// Whether objects are written there.
        writes: bool,
    },
    /// Opens network connections to this host (and port, if the spec names one).
    Connect {
        /// Host name or address, as written.
        host: String,
        /// Port.
        port: Option<u16>,
    },
    /// Connects somewhere the spec does not state in a form that can be checked
    /// (a Unix socket, hosts hidden in options): `why` says what.
    UncheckableEndpoint(String),
    /// Hands this property to a client library; `safe` when it neither loads code,
    /// runs commands, reads files nor changes where the client connects.
    ClientProperty {
        /// Property name.
        key: String,
        /// Whether it is on the connector's list of harmless properties.
        safe: bool,
    },
}
