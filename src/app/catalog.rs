//! `proxkeep catalog`: every category of the catalog, and what each finds on this host.

use crate::catalog::{self, Applies, CATEGORIES, Source};
use crate::collect::{self, CategoryCount, Excluded};
use crate::config::Config;
use crate::host::{HostFacts, Role, Root, Versions};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct CatalogReport {
    pub host: String,
    pub role: Role,
    pub versions: Versions,
    pub categories: Vec<CategoryFound>,
    /// What each exclude (the catalog's and `[collect] exclude`) removed on this host.
    pub excluded: Vec<Excluded>,
    pub held_on_restore: &'static [&'static str],
    pub commands_run: usize,
    pub commands_not_run: usize,
    /// proxkeep's own paths under the root (backup dir, log dir, lock file, secondaries): never collected.
    pub never_collected: Vec<collect::NeverCollected>,
}

#[derive(Debug, Serialize)]
pub struct CategoryFound {
    pub name: &'static str,
    pub description: &'static str,
    pub applies: Applies,
    /// Collected on this host's role.
    pub active: bool,
    pub sources: &'static [Source],
    pub exclude: &'static [&'static str],
    pub found: Option<CategoryCount>,
}

pub fn run(root: &Root, config: &Config) -> CatalogReport {
    let facts = HostFacts::detect(root);
    let plan = collect::scan(root, &facts, config);
    let counts = plan.counts();
    let categories = CATEGORIES
        .iter()
        .map(|c| CategoryFound {
            name: c.name,
            description: c.description,
            applies: c.applies,
            active: plan.categories.iter().any(|n| n == c.name),
            sources: c.sources,
            exclude: c.exclude,
            found: counts.iter().find(|x| x.category == c.name).cloned(),
        })
        .collect();
    CatalogReport {
        host: facts.hostname,
        role: facts.role,
        versions: facts.versions,
        categories,
        excluded: plan.excluded,
        held_on_restore: catalog::HELD_ON_RESTORE,
        commands_run: plan.commands.len(),
        commands_not_run: plan.commands_not_run,
        never_collected: plan.never_collected,
    }
}
