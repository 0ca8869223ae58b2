//! The desktop's files, embedded in the binary: one table, looked up by exact path, so no
//! request path ever reaches a file system (`..`, encoded or not, is simply not in it).

/// One embedded file.
pub(crate) struct Asset {
    /// The URL path it is served at.
    pub path: &'static str,
    /// Its content type.
    pub mime: &'static str,
    pub body: &'static [u8],
    /// Served without a session: what the login page needs, and nothing about the cluster.
    pub public: bool,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// What a browser without a session sees at `/`: how to log in.
pub(crate) const NOTICE: &[u8] = include_bytes!("../assets/notice.html");

/// Every file of the desktop.
pub(crate) const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        mime: HTML,
        body: include_bytes!("../assets/index.html"),
        public: false,
    },
    Asset {
        path: "/processes",
        mime: HTML,
        body: include_bytes!("../assets/processes.html"),
        public: false,
    },
    Asset {
        path: "/assets/processes.js",
        mime: JS,
        body: include_bytes!("../assets/processes.js"),
        public: false,
    },
    Asset {
        path: "/graphs",
        mime: HTML,
        body: include_bytes!("../assets/graphs.html"),
        public: false,
    },
    Asset {
        path: "/assets/graphs.js",
        mime: JS,
        body: include_bytes!("../assets/graphs.js"),
        public: false,
    },
    Asset {
        path: "/files",
        mime: HTML,
        body: include_bytes!("../assets/files.html"),
        public: false,
    },
    Asset {
        path: "/assets/files.js",
        mime: JS,
        body: include_bytes!("../assets/files.js"),
        public: false,
    },
    Asset {
        path: "/services",
        mime: HTML,
        body: include_bytes!("../assets/services.html"),
        public: false,
    },
    Asset {
        path: "/store",
        mime: HTML,
        body: include_bytes!("../assets/store.html"),
        public: false,
    },
    Asset {
        path: "/assets/store.js",
        mime: JS,
        body: include_bytes!("../assets/store.js"),
        public: false,
    },
    Asset {
        path: "/terminal",
        mime: HTML,
        body: include_bytes!("../assets/terminal.html"),
        public: false,
    },
    Asset {
        path: "/assets/common.js",
        mime: JS,
        body: include_bytes!("../assets/common.js"),
        public: false,
    },
    Asset {
        path: "/assets/overview.js",
        mime: JS,
        body: include_bytes!("../assets/overview.js"),
        public: false,
    },
    Asset {
        path: "/assets/services.js",
        mime: JS,
        body: include_bytes!("../assets/services.js"),
        public: false,
    },
    Asset {
        path: "/assets/terminal.js",
        mime: JS,
        body: include_bytes!("../assets/terminal.js"),
        public: false,
    },
    Asset {
        path: "/login",
        mime: HTML,
        body: include_bytes!("../assets/login.html"),
        public: true,
    },
    Asset {
        path: "/assets/login.js",
        mime: JS,
        body: include_bytes!("../assets/login.js"),
        public: true,
    },
    Asset {
        path: "/assets/style.css",
        mime: CSS,
        body: include_bytes!("../assets/style.css"),
        public: true,
    },
];

/// The file served at `path`.
pub(crate) fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// Bytes of all the desktop's files together.
pub fn total_bytes() -> usize {
    ASSETS.iter().map(|a| a.body.len()).sum::<usize>() + NOTICE.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_stay_small() {
        // The bound is 400 KB compressed; uncompressed is stricter.
        assert!(total_bytes() < 400_000, "{} bytes", total_bytes());
    }

    #[test]
    fn only_listed_paths_are_served() {
        assert!(find("/assets/overview.js").is_some());
        for path in [
            "/assets/../Cargo.toml",
            "/assets/%2e%2e/app.js",
            "/assets",
            "//",
            "",
        ] {
            assert!(find(path).is_none(), "{path}");
        }
    }
}
