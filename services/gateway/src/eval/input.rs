//! Reading a test collection in BEIR layout: queries (`{"_id", "text"}` a line), judgments (a TSV
//! `query-id<TAB>corpus-id<TAB>score` with an optional header row, or TREC's `qid 0 docid rel`),
//! and a corpus (`{"_id", "title", "text"}` a line). Every error names the file and the line.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;

use super::metrics::Judged;

#[derive(Debug, thiserror::Error)]
#[error("{path}{}: {reason}", if *line == 0 { String::new() } else { format!(":{line}") })]
pub struct InputError {
    pub path: String,
    /// 0 when the file could not be opened at all.
    pub line: usize,
    pub reason: String,
}

fn lines(path: &Path) -> Result<impl Iterator<Item = (usize, Result<String, InputError>)>, InputError> {
    let shown = path.display().to_string();
    let file =
        std::fs::File::open(path).map_err(|e| InputError { path: shown.clone(), line: 0, reason: e.to_string() })?;
    Ok(BufReader::new(file).lines().enumerate().map(move |(i, line)| {
        let error = |e: std::io::Error| InputError { path: shown.clone(), line: i + 1, reason: e.to_string() };
        (i + 1, line.map_err(error))
    }))
}

fn error(path: &Path, line: usize, reason: impl Into<String>) -> InputError {
    InputError { path: path.display().to_string(), line, reason: reason.into() }
}

#[derive(serde::Deserialize)]
struct Row {
    #[serde(rename = "_id")]
    id: IdValue,
    #[serde(default)]
    title: String,
    text: String,
}

/// BEIR ids are strings, but some collections write numbers.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum IdValue {
    Text(String),
    Number(serde_json::Number),
}

impl IdValue {
    fn into_string(self) -> String {
        match self {
            Self::Text(s) => s,
            Self::Number(n) => n.to_string(),
        }
    }
}

/// `(id, title, text)` of every line of a BEIR JSONL file; blank lines are skipped.
fn rows(path: &Path) -> Result<Vec<(String, String, String)>, InputError> {
    let mut out = Vec::new();
    let mut seen = HashMap::new();
    for (n, line) in lines(path)? {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let row: Row = serde_json::from_str(&line)
            .map_err(|e| error(path, n, format!("not a {{\"_id\", \"text\"}} object: {e}")))?;
        let id = row.id.into_string();
        if let Some(first) = seen.insert(id.clone(), n) {
            return Err(error(path, n, format!("id {id:?} again (first on line {first})")));
        }
        out.push((id, row.title, row.text));
    }
    Ok(out)
}

/// The queries, in file order: `(id, text)`.
pub(super) fn queries(path: &Path) -> Result<Vec<(String, String)>, InputError> {
    let rows = rows(path)?;
    if rows.is_empty() {
        return Err(error(path, 0, "no queries"));
    }
    Ok(rows.into_iter().map(|(id, _, text)| (id, text)).collect())
}

/// The corpus as ingest's JSONL documents (`{"id", "text"}`; the text is the title and the text).
pub(super) fn corpus_documents(path: &Path) -> Result<(Vec<u8>, usize), InputError> {
    let mut out = Vec::new();
    let rows = rows(path)?;
    for (id, title, text) in &rows {
        let text = if title.trim().is_empty() { text.clone() } else { format!("{title}\n{text}") };
        serde_json::to_writer(&mut out, &serde_json::json!({"id": id, "text": text})).expect("JSON to memory");
        out.push(b'\n');
    }
    Ok((out, rows.len()))
}

/// The judgments per query. Every query they name must be in `queries`.
pub(super) fn qrels(path: &Path, queries: &[(String, String)]) -> Result<BTreeMap<String, Judged>, InputError> {
    let known: HashMap<&str, ()> = queries.iter().map(|(id, _)| (id.as_str(), ())).collect();
    let mut out: BTreeMap<String, Judged> = BTreeMap::new();
    for (n, line) in lines(path)? {
        let line = line?;
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (query, doc, grade) = match fields.as_slice() {
            [] => continue,
            [q, d, g] => (*q, *d, *g),
            [q, _iteration, d, g] => (*q, *d, *g),
            _ => return Err(error(path, n, format!("expected 3 columns (BEIR) or 4 (TREC), got {}", fields.len()))),
        };
        let Ok(grade) = grade.parse::<i64>() else {
            if n == 1 {
                continue; // the BEIR header row, `query-id corpus-id score`
            }
            return Err(error(path, n, format!("relevance {grade:?} is not an integer")));
        };
        if !known.contains_key(query) {
            return Err(error(path, n, format!("query {query:?} is not in the queries file")));
        }
        out.entry(query.to_string()).or_default().insert(doc.to_string(), grade);
    }
    if out.is_empty() {
        return Err(error(path, 0, "no judgments"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, body: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("eval-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        path
    }

    #[test]
    fn beir_and_trec_judgments_are_read_and_bad_lines_named() {
        let q =
            queries(&file("q.jsonl", "{\"_id\": \"1\", \"text\": \"a\"}\n\n{\"_id\": 2, \"text\": \"b\"}\n")).unwrap();
        assert_eq!(q, [("1".into(), "a".into()), ("2".into(), "b".into())]);
        let beir = qrels(&file("b.tsv", "query-id\tcorpus-id\tscore\n1\td1\t2\n2\td2\t0\n"), &q).unwrap();
        assert_eq!(beir["1"]["d1"], 2);
        assert_eq!(beir["2"]["d2"], 0);
        let trec = qrels(&file("t.txt", "1 0 d3 1\n"), &q).unwrap();
        assert_eq!(trec["1"]["d3"], 1);

        let unknown = qrels(&file("u.tsv", "1\td1\t1\n9\td1\t1\n"), &q).unwrap_err().to_string();
        assert!(unknown.ends_with("u.tsv:2: query \"9\" is not in the queries file"), "{unknown}");
        let grade = qrels(&file("g.tsv", "1\td1\t1\n1\td2\thigh\n"), &q).unwrap_err().to_string();
        assert!(grade.ends_with("g.tsv:2: relevance \"high\" is not an integer"), "{grade}");
        let broken = queries(&file("bad.jsonl", "{\"_id\": \"1\", \"text\": \"a\"}\n{\"_id\": \"2\"\n")).unwrap_err();
        assert_eq!(broken.line, 2, "{broken}");
        let twice =
            queries(&file("twice.jsonl", "{\"_id\": \"1\", \"text\": \"a\"}\n{\"_id\": \"1\", \"text\": \"b\"}\n"));
        assert!(twice.unwrap_err().to_string().contains("id \"1\" again (first on line 1)"));
        let missing = queries(Path::new("/nonexistent/q.jsonl")).unwrap_err();
        assert_eq!(missing.line, 0);
    }

    #[test]
    fn corpus_rows_become_ingest_documents_with_their_titles() {
        let path = file(
            "c.jsonl",
            "{\"_id\": \"d1\", \"title\": \"T\", \"text\": \"body\"}\n{\"_id\": \"d2\", \"text\": \"only\"}\n",
        );
        let (jsonl, n) = corpus_documents(&path).unwrap();
        assert_eq!(n, 2);
        let lines: Vec<serde_json::Value> =
            String::from_utf8(jsonl).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines[0], serde_json::json!({"id": "d1", "text": "T\nbody"}));
        assert_eq!(lines[1], serde_json::json!({"id": "d2", "text": "only"}));
    }
}
