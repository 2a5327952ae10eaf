//! Sends a few readings and reads the entity back, saying how fresh the
//! answer is. With `atlas dev` running:
//!
//! ```sh
//! export ATLAS_TOKEN=$(cargo run -q --bin atlas -- token --tenant 1)
//! cargo run -q -p atlas-client --example first_reading
//! ```

use std::time::Duration;

use atlas_client::{Client, ClientError, ReadOptions, Reading};

#[tokio::main]
async fn main() -> Result<(), ClientError> {
    let atlas = Client::from_env()?;
    let sent = atlas
        .send_readings(&[
            Reading::new(4242, "temperature", 21.5),
            Reading::new(4242, "status", "online"),
            Reading::new(4242, "no_such_attribute", 1),
        ])
        .await?;
    println!("accepted {}, refused {:?}", sent.accepted, sent.rejected);

    // Strong reads see a reading once the flusher has moved it (about a
    // second); until then the entity is a 404.
    for _ in 0..50 {
        match atlas.entity(4242, &ReadOptions::strong()).await {
            Ok(entity) => {
                let f = &entity.freshness;
                println!(
                    "{} from {} ({} consistency, {:.3} s behind, as of {})",
                    entity.value["hot_attributes"],
                    f.source,
                    f.consistency.as_str(),
                    f.lag_seconds,
                    f.data_as_of
                );
                return Ok(());
            }
            Err(e) if e.code() == Some("not_found") => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => return Err(e),
        }
    }
    eprintln!("entity 4242 was not flushed within 10 s");
    std::process::exit(1)
}
