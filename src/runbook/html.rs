//! The runbook as one self-contained HTML file: inline CSS (with a print stylesheet: a page break before
//! each section, tables that wrap instead of being clipped), no script, nothing fetched; every text escaped.

use super::{Block, Runbook};
use std::fmt::Write;

const CSS: &str = "
body { font: 15px/1.45 system-ui, sans-serif; color: #111; background: #fff; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.7rem; border-bottom: 3px solid #e57000; padding-bottom: .3rem; }
h2 { font-size: 1.35rem; margin-top: 2.2rem; border-bottom: 1px solid #ccc; }
h3 { font-size: 1.05rem; margin-top: 1.4rem; }
table { border-collapse: collapse; margin: .6rem 0; width: 100%; table-layout: auto; }
th, td { border: 1px solid #bbb; padding: .25rem .5rem; text-align: left; vertical-align: top; overflow-wrap: anywhere; }
th { background: #f0f0f0; }
pre { background: #f6f6f6; border-left: 4px solid #e57000; padding: .5rem .8rem; white-space: pre-wrap; overflow-wrap: anywhere; }
pre.quote { border-left-color: #888; }
code { background: #f3f3f3; padding: 0 .2rem; }
.missing { font-style: italic; color: #8a4b00; }
.from { font-size: .8rem; color: #555; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
dt { font-weight: 600; }
dd { margin: 0; }
@media print {
  body { margin: 0; max-width: none; font-size: 11pt; }
  section { break-before: page; }
  section:first-of-type { break-before: auto; }
  h2, h3 { break-after: avoid; }
  tr, pre { break-inside: avoid; }
  table { width: 100%; }
  pre { white-space: pre-wrap; }
}
";

/// `s` escaped for HTML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Escaped text where `` `code` `` spans become `<code>`.
fn inline(s: &str) -> String {
    let parts: Vec<&str> = s.split('`').collect();
    if parts.len().is_multiple_of(2) {
        return escape(s); // an odd backtick: no spans
    }
    let each = parts.iter().enumerate().map(|(i, p)| match i % 2 {
        1 => format!("<code>{}</code>", escape(p)),
        _ => escape(p),
    });
    each.collect()
}

pub fn render(r: &Runbook) -> String {
    let mut o = String::new();
    let title = escape(&r.title);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>{title}</h1>\n<p>Made from archive <code>{}</code>.</p>\n",
        escape(&r.archive)
    );
    for s in &r.sections {
        let _ = writeln!(o, "<section>\n<h2>{}</h2>", escape(&s.title));
        for b in &s.blocks {
            block(&mut o, b);
        }
        o.push_str("</section>\n");
    }
    o.push_str("</body>\n</html>\n");
    o
}

fn block(o: &mut String, b: &Block) {
    let _ = match b {
        Block::Heading { text } => writeln!(o, "<h3>{}</h3>", escape(text)),
        Block::Text { text } => writeln!(o, "<p>{}</p>", inline(text)),
        Block::Missing { text } => writeln!(o, "<p class=\"missing\">{}</p>", inline(text)),
        Block::Facts { pairs } => {
            o.push_str("<dl>\n");
            for (k, v) in pairs {
                let _ = writeln!(o, "<dt>{}</dt><dd>{}</dd>", escape(k), escape(v));
            }
            writeln!(o, "</dl>")
        }
        Block::Table { head, rows } => {
            let cells = |tag: &str, cells: &[String]| -> String {
                let c: Vec<String> = cells
                    .iter()
                    .map(|c| format!("<{tag}>{}</{tag}>", escape(c)))
                    .collect();
                format!("<tr>{}</tr>\n", c.concat())
            };
            o.push_str("<table>\n<thead>\n");
            o.push_str(&cells("th", head));
            o.push_str("</thead>\n<tbody>\n");
            rows.iter().for_each(|r| o.push_str(&cells("td", r)));
            writeln!(o, "</tbody>\n</table>")
        }
        Block::Commands { lines } => writeln!(o, "<pre>{}</pre>", escape(&lines.join("\n"))),
        Block::Quote { lines } => writeln!(
            o,
            "<pre class=\"quote\">{}</pre>",
            escape(&lines.join("\n"))
        ),
        Block::From { paths } => {
            let p: Vec<String> = paths
                .iter()
                .map(|p| format!("<code>{}</code>", escape(p)))
                .collect();
            writeln!(o, "<p class=\"from\">from: {}</p>", p.join(", "))
        }
    };
}

#[cfg(test)]
mod tests {
    use super::super::Section;
    use super::*;

    #[test]
    fn everything_is_escaped_and_nothing_is_fetched() {
        let evil = "<script>alert(1)</script> & \"x\" <img src=https://e.x/a.png>";
        let r = Runbook {
            title: evil.into(),
            archive: evil.into(),
            sections: vec![Section {
                title: evil.into(),
                blocks: vec![
                    Block::Heading { text: evil.into() },
                    Block::Text {
                        text: format!("`{evil}` and {evil}"),
                    },
                    Block::Missing { text: evil.into() },
                    Block::Facts {
                        pairs: vec![(evil.into(), evil.into())],
                    },
                    Block::Table {
                        head: vec![evil.into()],
                        rows: vec![vec![evil.into()]],
                    },
                    Block::Commands {
                        lines: vec![evil.into()],
                    },
                    Block::Quote {
                        lines: vec![evil.into()],
                    },
                    Block::From {
                        paths: vec![evil.into()],
                    },
                ],
            }],
        };
        let html = render(&r);
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot;"));
        assert!(html.contains("<code>&lt;script&gt;"));
        assert!(html.contains("@media print") && html.contains("break-before: page"));
    }

    #[test]
    fn code_spans() {
        assert_eq!(inline("run `a<b` now"), "run <code>a&lt;b</code> now");
        assert_eq!(inline("odd ` tick"), "odd ` tick");
    }
}
