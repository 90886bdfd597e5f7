//! Opening a named connection, so that the broker's management view shows what each one is.

use lapin::{Connection, ConnectionProperties};

pub async fn connect(uri: &str, name: &str) -> lapin::Result<Connection> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect(uri, properties).await
}
