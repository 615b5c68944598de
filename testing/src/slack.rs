//! Checks a Slack message body against Slack's documented Block Kit
//! structure and limits: what Slack would refuse, found in a test rather
//! than by a channel that stays silent. Lengths are counted in UTF-16 code
//! units, as Slack documents them.
//!
//! | element                                 | limit |
//! |-----------------------------------------|-------|
//! | blocks per message                      | ≤ 50 |
//! | top-level `text`                        | ≤ 40 000 |
//! | header text (`plain_text`)              | 1 ..= 150 |
//! | section text                            | 1 ..= 3 000 |
//! | section fields                          | 1 ..= 10 fields, each 1 ..= 2 000 |
//! | context elements                        | 1 ..= 10, each text ≤ 3 000 |
//! | actions elements                        | 1 ..= 25 |
//! | button text (`plain_text`) / url        | 1 ..= 75 / ≤ 3 000 |
//! | `action_id` / `block_id`                | ≤ 255 |

use serde_json::Value;

const MAX_BLOCKS: usize = 50;
const MAX_TOP_TEXT: usize = 40_000;
const HEADER_TEXT: usize = 150;
const SECTION_TEXT: usize = 3000;
const MAX_FIELDS: usize = 10;
const FIELD_TEXT: usize = 2000;
const MAX_CONTEXT_ELEMENTS: usize = 10;
const CONTEXT_TEXT: usize = 3000;
const MAX_ACTION_ELEMENTS: usize = 25;
const BUTTON_TEXT: usize = 75;
const URL_LEN: usize = 3000;
const ACTION_ID_LEN: usize = 255;
const BLOCK_ID_LEN: usize = 255;

fn units(text: &str) -> usize {
    text.encode_utf16().count()
}

/// Checks a Slack message body against Slack's documented structure and the
/// limits listed in the module documentation. Knows the block types `header`,
/// `section`, `context`, `actions` and `divider`, and `button` as the only
/// interactive element. The error names the offending JSON path.
pub fn validate(v: &Value) -> Result<(), String> {
    let top = v.as_object().ok_or("body: not a JSON object")?;
    let text = top
        .get("text")
        .and_then(Value::as_str)
        .ok_or("text: missing or not a string")?;
    check_len("text", text, 0, MAX_TOP_TEXT)?;
    let blocks = top
        .get("blocks")
        .and_then(Value::as_array)
        .ok_or("blocks: missing or not an array")?;
    if blocks.len() > MAX_BLOCKS {
        return Err(format!(
            "blocks: {} blocks, at most {MAX_BLOCKS} allowed",
            blocks.len()
        ));
    }
    for (i, block) in blocks.iter().enumerate() {
        validate_block(&format!("blocks[{i}]"), block)?;
    }
    Ok(())
}

fn check_len(path: &str, text: &str, min: usize, max: usize) -> Result<(), String> {
    let n = units(text);
    if n < min || n > max {
        return Err(format!("{path}: length {n}, must be {min}..={max}"));
    }
    Ok(())
}

fn get_str<'a>(obj: &'a Value, path: &str, key: &str) -> Result<&'a str, String> {
    obj.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{path}.{key}: missing or not a string"))
}

/// A text object: `plain_text` or `mrkdwn` (or only `plain_text` when
/// `plain_only`), with text of 1..=`max` units.
fn validate_text(path: &str, t: &Value, max: usize, plain_only: bool) -> Result<(), String> {
    if !t.is_object() {
        return Err(format!("{path}: not a text object"));
    }
    let kind = get_str(t, path, "type")?;
    match kind {
        "plain_text" => {
            if t.get("verbatim").is_some() {
                return Err(format!("{path}.verbatim: only allowed on mrkdwn"));
            }
            if t.get("emoji").is_some_and(|e| !e.is_boolean()) {
                return Err(format!("{path}.emoji: not a boolean"));
            }
        }
        "mrkdwn" if !plain_only => {
            if t.get("emoji").is_some() {
                return Err(format!("{path}.emoji: only allowed on plain_text"));
            }
        }
        other => {
            let allowed = if plain_only {
                "plain_text"
            } else {
                "plain_text or mrkdwn"
            };
            return Err(format!("{path}.type: {other:?}, must be {allowed}"));
        }
    }
    check_len(&format!("{path}.text"), get_str(t, path, "text")?, 1, max)
}

fn validate_block(path: &str, block: &Value) -> Result<(), String> {
    if !block.is_object() {
        return Err(format!("{path}: not an object"));
    }
    if let Some(id) = block.get("block_id") {
        let id = id
            .as_str()
            .ok_or_else(|| format!("{path}.block_id: not a string"))?;
        check_len(&format!("{path}.block_id"), id, 1, BLOCK_ID_LEN)?;
    }
    let sub = |key: &str| format!("{path}.{key}");
    match get_str(block, path, "type")? {
        "header" => {
            let text = block
                .get("text")
                .ok_or_else(|| format!("{path}.text: missing"))?;
            validate_text(&sub("text"), text, HEADER_TEXT, true)
        }
        "section" => {
            let text = block.get("text");
            let fields = block.get("fields");
            if text.is_none() && fields.is_none() {
                return Err(format!("{path}: section needs text or fields"));
            }
            if let Some(text) = text {
                validate_text(&sub("text"), text, SECTION_TEXT, false)?;
            }
            if let Some(fields) = fields {
                let fields = fields
                    .as_array()
                    .ok_or_else(|| format!("{path}.fields: not an array"))?;
                if fields.is_empty() || fields.len() > MAX_FIELDS {
                    return Err(format!(
                        "{path}.fields: {} fields, must be 1..={MAX_FIELDS}",
                        fields.len()
                    ));
                }
                for (i, f) in fields.iter().enumerate() {
                    validate_text(&format!("{path}.fields[{i}]"), f, FIELD_TEXT, false)?;
                }
            }
            Ok(())
        }
        "context" => {
            let elements = elements(block, path, MAX_CONTEXT_ELEMENTS)?;
            for (i, e) in elements.iter().enumerate() {
                let epath = format!("{path}.elements[{i}]");
                if e.get("type").and_then(Value::as_str) == Some("image") {
                    get_str(e, &epath, "image_url")?;
                    get_str(e, &epath, "alt_text")?;
                } else {
                    validate_text(&epath, e, CONTEXT_TEXT, false)?;
                }
            }
            Ok(())
        }
        "actions" => {
            let elements = elements(block, path, MAX_ACTION_ELEMENTS)?;
            for (i, e) in elements.iter().enumerate() {
                validate_button(&format!("{path}.elements[{i}]"), e)?;
            }
            Ok(())
        }
        "divider" => Ok(()),
        other => Err(format!("{path}.type: unknown block type {other:?}")),
    }
}

fn elements<'a>(block: &'a Value, path: &str, max: usize) -> Result<&'a Vec<Value>, String> {
    let elements = block
        .get("elements")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{path}.elements: missing or not an array"))?;
    if elements.is_empty() || elements.len() > max {
        return Err(format!(
            "{path}.elements: {} elements, must be 1..={max}",
            elements.len()
        ));
    }
    Ok(elements)
}

fn validate_button(path: &str, e: &Value) -> Result<(), String> {
    let kind = get_str(e, path, "type")?;
    if kind != "button" {
        return Err(format!("{path}.type: unsupported element type {kind:?}"));
    }
    let text = e
        .get("text")
        .ok_or_else(|| format!("{path}.text: missing"))?;
    validate_text(&format!("{path}.text"), text, BUTTON_TEXT, true)?;
    if let Some(url) = e.get("url") {
        let url = url
            .as_str()
            .ok_or_else(|| format!("{path}.url: not a string"))?;
        check_len(&format!("{path}.url"), url, 1, URL_LEN)?;
    }
    if let Some(id) = e.get("action_id") {
        let id = id
            .as_str()
            .ok_or_else(|| format!("{path}.action_id: not a string"))?;
        check_len(&format!("{path}.action_id"), id, 1, ACTION_ID_LEN)?;
    }
    Ok(())
}
