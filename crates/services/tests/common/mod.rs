//! One node with `sys.proc` and `sys.pipe` for the services' tests: a real kernel, process
//! supervisor and node database, with real programs.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use plexus_identity::{KeyKind, Keypair};
use plexus_kernel::{Error, Kernel, Policy, Terminal};
use plexus_proc::{Config, Supervisor};
use plexus_services::directory::SingleNode;
use plexus_services::sys_proc::SysProc;
use plexus_services::testing::{bare_kernel, eval_text, TestTerminal};
use plexus_units::{to_text, Unit};

pub struct Node {
    pub kernel: Kernel,
    pub admin: Keypair,
    pub bob: Keypair,
    pub service: Arc<SysProc>,
    pub db: Arc<plexus_store::NodeDb>,
    pub _dir: tempfile::TempDir,
}

pub async fn node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let (kernel, admin) = bare_kernel();
    let db = plexus_services::open_db(&dir.path().join("node.redb")).unwrap();
    let mut config = Config::new(dir.path().join("procs"));
    config.cgroups = false;
    let (supervisor, lost) = Supervisor::start(config).unwrap();
    assert!(lost.is_empty());
    let service = SysProc::new(
        db.clone(),
        SingleNode::shared(&kernel.node().name, Default::default()),
        Arc::new(supervisor),
    );
    kernel
        .register(service.clone(), None, Policy::Registered)
        .unwrap();
    kernel
        .register(service.pipe_service(), None, Policy::Registered)
        .unwrap();
    let bob = Keypair::generate(KeyKind::User, "bob", &mut rand::rngs::OsRng).unwrap();
    kernel.register_user(bob.public(), "bob").unwrap();
    Node {
        kernel,
        admin,
        bob,
        service,
        db,
        _dir: dir,
    }
}

impl Node {
    pub async fn call(
        &self,
        user: &Keypair,
        term: Option<Arc<TestTerminal>>,
        text: &str,
    ) -> Result<Unit, Error> {
        let term = term.map(|t| t as Arc<dyn Terminal>);
        eval_text(&self.kernel, user, term, text)
            .await
            .map(|v| v.unwrap_or(Unit::None))
    }

    pub async fn admin(&self, text: &str) -> Result<Unit, Error> {
        self.call(&self.admin, None, text).await
    }

    /// A detached run's id.
    pub async fn start(&self, command: &str) -> String {
        let reply = self
            .admin(&format!("{{run:{command}}}@sys.proc"))
            .await
            .unwrap();
        field(&reply, "id")
    }
}

pub fn field(u: &Unit, key: &str) -> String {
    match u.as_map().and_then(|m| m.get_str(key)) {
        Some(Unit::Str(s)) => s.to_string(),
        Some(other) => to_text(other),
        None => panic!("no {key} in {}", to_text(u)),
    }
}
