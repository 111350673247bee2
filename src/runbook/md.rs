//! The runbook as plain Markdown (CommonMark with GitHub tables).

use super::{Block, Runbook};
use std::fmt::Write;

/// A table cell: pipes escaped, line breaks flattened.
fn cell(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

/// A fenced block's line: a fence inside cannot end the block early.
fn fenced(s: &str) -> String {
    s.replace("```", "'''")
}

pub fn render(r: &Runbook) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# {}\n\nMade from archive `{}`.", r.title, r.archive);
    for s in &r.sections {
        let _ = writeln!(o, "\n## {}", s.title);
        for b in &s.blocks {
            o.push('\n');
            block(&mut o, b);
        }
    }
    o
}

fn block(o: &mut String, b: &Block) {
    let _ = match b {
        Block::Heading { text } => writeln!(o, "### {text}"),
        Block::Text { text } => writeln!(o, "{text}"),
        Block::Missing { text } => writeln!(o, "_{text}_"),
        Block::Facts { pairs } => pairs
            .iter()
            .try_for_each(|(k, v)| writeln!(o, "- **{k}:** {v}")),
        Block::Table { head, rows } => {
            let line = |cells: &[String]| {
                let cells: Vec<String> = cells.iter().map(|c| cell(c)).collect();
                format!("| {} |\n", cells.join(" | "))
            };
            o.push_str(&line(head));
            o.push_str(&line(&vec!["---".to_string(); head.len()]));
            rows.iter().for_each(|r| o.push_str(&line(r)));
            Ok(())
        }
        Block::Commands { lines } => fence(o, "sh", lines),
        Block::Quote { lines } => fence(o, "text", lines),
        Block::From { paths } => {
            let paths: Vec<String> = paths
                .iter()
                .map(|p| format!("`{}`", p.replace('`', "'")))
                .collect();
            writeln!(o, "<sub>from: {}</sub>", paths.join(", "))
        }
    };
}

fn fence(o: &mut String, lang: &str, lines: &[String]) -> std::fmt::Result {
    writeln!(o, "```{lang}")?;
    lines
        .iter()
        .try_for_each(|l| writeln!(o, "{}", fenced(l)))?;
    writeln!(o, "```")
}

#[cfg(test)]
mod tests {
    use super::super::Section;
    use super::*;

    #[test]
    fn blocks_render_as_markdown() {
        let r = Runbook {
            title: "Rebuild runbook for due".into(),
            archive: "a.tar.zst".into(),
            sections: vec![Section {
                title: "1. X".into(),
                blocks: vec![
                    Block::Missing {
                        text: "no ZFS pools in this archive".into(),
                    },
                    Block::Table {
                        head: vec!["a".into(), "b".into()],
                        rows: vec![vec!["x|y".into(), "z".into()]],
                    },
                    Block::Commands {
                        lines: vec!["zpool import tank".into(), "echo ```".into()],
                    },
                    Block::From {
                        paths: vec!["etc/fstab".into()],
                    },
                ],
            }],
        };
        let md = render(&r);
        for want in [
            "# Rebuild runbook for due\n",
            "## 1. X\n",
            "_no ZFS pools in this archive_\n",
            "| a | b |\n| --- | --- |\n| x\\|y | z |\n",
            "```sh\nzpool import tank\necho '''\n```\n",
            "<sub>from: `etc/fstab`</sub>\n",
        ] {
            assert!(md.contains(want), "{want:?} not in\n{md}");
        }
    }
}
