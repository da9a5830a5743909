//! A Confluent Schema Registry client: `GET /schemas/ids/{id}`, cached by id, retried while unreachable.

use crate::avro::WriterSchema;
use lakefold_api::SourceError;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Why a schema could not be had.
#[derive(Debug)]
pub enum RegistryError {
    /// The registry answered, and the answer will not change (unknown id, not Avro): the record is a dead
    /// letter.
    Permanent(String),
    /// The registry could not be reached after retries: stop, resume later from the checkpoint.
    Unavailable(SourceError),
}

/// Writer schemas by id.
pub struct SchemaRegistry {
    base: String,
    client: reqwest::Client,
    cache: HashMap<u32, Arc<WriterSchema>>,
}

impl SchemaRegistry {
    pub fn new(url: &str) -> Result<SchemaRegistry, SourceError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| SourceError::Registry {
                url: url.to_string(),
                message: e.to_string(),
            })?;
        Ok(SchemaRegistry {
            base: url.trim_end_matches('/').to_string(),
            client,
            cache: HashMap::new(),
        })
    }

    pub async fn get(&mut self, id: u32) -> Result<Arc<WriterSchema>, RegistryError> {
        if let Some(s) = self.cache.get(&id) {
            return Ok(s.clone());
        }
        let url = format!("{}/schemas/ids/{id}", self.base);
        let mut backoff = Duration::from_millis(250);
        let mut last = String::new();
        for _ in 0..6 {
            match self.client.get(&url).send().await {
                Ok(resp) if resp.status().is_success() => {
                    let body: serde_json::Value = resp.json().await.map_err(|e| {
                        RegistryError::Permanent(format!(
                            "schema id {id}: unreadable registry answer: {e}"
                        ))
                    })?;
                    let text = body.get("schema").and_then(|s| s.as_str()).ok_or_else(|| {
                        RegistryError::Permanent(format!(
                            "schema id {id}: registry answer has no `schema`"
                        ))
                    })?;
                    if let Some(kind) = body.get("schemaType").and_then(|t| t.as_str()) {
                        if kind != "AVRO" {
                            return Err(RegistryError::Permanent(format!(
                                "schema id {id} is {kind}, not AVRO"
                            )));
                        }
                    }
                    let schema =
                        Arc::new(WriterSchema::parse(id, text).map_err(RegistryError::Permanent)?);
                    self.cache.insert(id, schema.clone());
                    return Ok(schema);
                }
                Ok(resp) if resp.status().is_client_error() => {
                    return Err(RegistryError::Permanent(format!(
                        "schema id {id}: registry answered {}",
                        resp.status()
                    )));
                }
                Ok(resp) => last = format!("registry answered {}", resp.status()),
                Err(e) => last = e.to_string(),
            }
            tracing::warn!(%url, error = %last, retry_in = ?backoff, "schema registry unavailable; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        Err(RegistryError::Unavailable(SourceError::Registry {
            url,
            message: last,
        }))
    }
}
