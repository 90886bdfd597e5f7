//! Users, vhosts, permissions, limits and policies: rabbitmqctl's commands over the API's
//! PUT and DELETE, with rabbitmqctl's messages.

use crate::client::{segment, Api};
use crate::error::{CtlError, CtlResult};
use crate::output::Style;
use serde_json::{json, Value};

fn user_path(user: &str) -> String {
    format!("/api/users/{}", segment(user))
}

/// A user's current record, or rabbitmqctl's complaint that there is none.
fn existing_user(api: &Api, user: &str) -> CtlResult<Value> {
    api.get(&user_path(user))
        .map_err(|_| CtlError::Data(format!("User \"{user}\" does not exist")))
}

pub fn add_user(api: &Api, style: &Style, user: &str, password: &str) -> CtlResult<()> {
    style.banner(&format!("Adding user \"{user}\" ..."));
    if api.get(&user_path(user)).is_ok() {
        return Err(CtlError::Data(format!("User \"{user}\" already exists")));
    }
    api.put(&user_path(user), &json!({"password": password, "tags": ""}))?;
    style.banner(
        "Done. Don't forget to grant the user permissions to some virtual hosts! \
         See 'warrenctl help set_permissions' to learn more.",
    );
    Ok(())
}

pub fn delete_user(api: &Api, style: &Style, user: &str) -> CtlResult<()> {
    style.banner(&format!("Deleting user \"{user}\" ..."));
    api.delete(&user_path(user))
        .map_err(|_| CtlError::Data(format!("User \"{user}\" does not exist")))?;
    Ok(())
}

pub fn change_password(api: &Api, style: &Style, user: &str, password: &str) -> CtlResult<()> {
    style.banner(&format!("Changing password for user \"{user}\" ..."));
    let current = existing_user(api, user)?;
    api.put(
        &user_path(user),
        &json!({"password": password, "tags": current["tags"]}),
    )?;
    Ok(())
}

/// Checks a password by asking the API who the user is: a user without a management tag is
/// refused as "not management user", which still means the password matched.
pub fn authenticate_user(api: &Api, style: &Style, user: &str, password: &str) -> CtlResult<()> {
    style.banner(&format!("Authenticating user \"{user}\" ..."));
    let as_user = api.with_credentials(user, password);
    match as_user.call("GET", "/api/whoami", None) {
        Ok(_) => {}
        Err(CtlError::Refused(reason)) if reason.contains("Not management user") => {}
        Err(CtlError::Refused(_)) => {
            return Err(CtlError::Data(format!(
                "failed to authenticate user \"{user}\": user '{user}' - invalid credentials"
            )))
        }
        Err(other) => return Err(other),
    }
    println!("Success");
    Ok(())
}

pub fn set_user_tags(api: &Api, style: &Style, user: &str, tags: &[String]) -> CtlResult<()> {
    style.banner(&format!(
        "Setting tags for user \"{user}\" to [{}] ...",
        tags.join(", ")
    ));
    let current = existing_user(api, user)?;
    let mut body = json!({"tags": tags.join(",")});
    // Keeping the password: the API replaces a user with what it is given.
    body["password_hash"] = current["password_hash"].clone();
    body["hashing_algorithm"] = current["hashing_algorithm"].clone();
    api.put(&user_path(user), &body)?;
    Ok(())
}

pub fn add_vhost(
    api: &Api,
    style: &Style,
    vhost: &str,
    description: Option<&str>,
    tags: Option<&str>,
    default_queue_type: Option<&str>,
) -> CtlResult<()> {
    style.banner(&format!("Adding vhost \"{vhost}\" ..."));
    let mut body = json!({});
    if let Some(d) = description {
        body["description"] = json!(d);
    }
    if let Some(t) = tags {
        body["tags"] = json!(t);
    }
    if let Some(q) = default_queue_type {
        body["default_queue_type"] = json!(q);
    }
    api.put(&format!("/api/vhosts/{}", segment(vhost)), &body)?;
    Ok(())
}

pub fn delete_vhost(api: &Api, style: &Style, vhost: &str) -> CtlResult<()> {
    style.banner(&format!("Deleting vhost \"{vhost}\" ..."));
    api.delete(&format!("/api/vhosts/{}", segment(vhost)))
        .map_err(|_| CtlError::Data(format!("Virtual host '{vhost}' does not exist")))?;
    Ok(())
}

pub fn set_permissions(
    api: &Api,
    style: &Style,
    vhost: &str,
    user: &str,
    patterns: [&str; 3],
) -> CtlResult<()> {
    style.banner(&format!(
        "Setting permissions for user \"{user}\" in vhost \"{vhost}\" ..."
    ));
    let [configure, write, read] = patterns;
    let path = format!("/api/permissions/{}/{}", segment(vhost), segment(user));
    api.put(
        &path,
        &json!({"configure": configure, "write": write, "read": read}),
    )?;
    Ok(())
}

pub fn clear_permissions(api: &Api, style: &Style, vhost: &str, user: &str) -> CtlResult<()> {
    style.banner(&format!(
        "Clearing permissions for user \"{user}\" in vhost \"{vhost}\" ..."
    ));
    let path = format!("/api/permissions/{}/{}", segment(vhost), segment(user));
    // Clearing what is not set is no error, as in rabbitmqctl.
    match api.delete(&path) {
        Ok(_) | Err(CtlError::Data(_)) => Ok(()),
        Err(other) => Err(other),
    }
}

pub fn set_topic_permissions(
    api: &Api,
    style: &Style,
    vhost: &str,
    user: &str,
    exchange: &str,
    write: &str,
    read: &str,
) -> CtlResult<()> {
    style.banner(&format!(
        "Setting topic permissions on \"{exchange}\" for user \"{user}\" in vhost \"{vhost}\" ..."
    ));
    let path = format!(
        "/api/topic-permissions/{}/{}",
        segment(vhost),
        segment(user)
    );
    api.put(
        &path,
        &json!({"exchange": exchange, "write": write, "read": read}),
    )?;
    Ok(())
}

pub fn clear_topic_permissions(
    api: &Api,
    style: &Style,
    vhost: &str,
    user: &str,
    exchange: Option<&str>,
) -> CtlResult<()> {
    style.banner(&format!(
        "Clearing topic permissions for user \"{user}\" in vhost \"{vhost}\" ..."
    ));
    let path = format!(
        "/api/topic-permissions/{}/{}",
        segment(vhost),
        segment(user)
    );
    let Some(exchange) = exchange else {
        return match api.delete(&path) {
            Ok(_) | Err(CtlError::Data(_)) => Ok(()),
            Err(other) => Err(other),
        };
    };
    // The API clears all of a user's topic permissions at once: the others are set again.
    let current = api.get(&path).unwrap_or(Value::Array(Vec::new()));
    let _ = api.delete(&path);
    for p in current.as_array().into_iter().flatten() {
        if p["exchange"] != exchange {
            api.put(&path, p)?;
        }
    }
    Ok(())
}

/// A limits object given on the command line, as JSON.
fn limits_of(definition: &str) -> CtlResult<serde_json::Map<String, Value>> {
    match serde_json::from_str(definition) {
        Ok(Value::Object(o)) => Ok(o),
        _ => Err(CtlError::Usage(format!(
            "the limits must be a JSON object, got {definition}"
        ))),
    }
}

pub fn set_vhost_limits(api: &Api, style: &Style, vhost: &str, definition: &str) -> CtlResult<()> {
    style.banner(&format!(
        "Setting vhost limits to \"{definition}\" for vhost \"{vhost}\" ..."
    ));
    for (name, value) in limits_of(definition)? {
        let path = format!("/api/vhost-limits/{}/{}", segment(vhost), segment(&name));
        api.put(&path, &json!({"value": value}))?;
    }
    Ok(())
}

pub fn clear_vhost_limits(api: &Api, style: &Style, vhost: &str) -> CtlResult<()> {
    style.banner(&format!("Clearing limits for vhost \"{vhost}\" ..."));
    for name in ["max-connections", "max-queues"] {
        api.delete(&format!("/api/vhost-limits/{}/{name}", segment(vhost)))?;
    }
    Ok(())
}

pub fn set_user_limits(api: &Api, style: &Style, user: &str, definition: &str) -> CtlResult<()> {
    style.banner(&format!(
        "Setting user limits to \"{definition}\" for user \"{user}\" ..."
    ));
    for (name, value) in limits_of(definition)? {
        let path = format!("/api/user-limits/{}/{}", segment(user), segment(&name));
        api.put(&path, &json!({"value": value}))?;
    }
    Ok(())
}

pub fn clear_user_limits(api: &Api, style: &Style, user: &str, limit: &str) -> CtlResult<()> {
    style.banner(&format!(
        "Clearing \"{limit}\" limit for user \"{user}\" ..."
    ));
    let names: Vec<&str> = match limit {
        "all" => vec!["max-connections", "max-channels"],
        one => vec![one],
    };
    for name in names {
        api.delete(&format!("/api/user-limits/{}/{name}", segment(user)))?;
    }
    Ok(())
}

/// set_policy and set_operator_policy.
pub fn set_policy(
    api: &Api,
    style: &Style,
    vhost: &str,
    operator: bool,
    args: &crate::cli::PolicyArgs,
) -> CtlResult<()> {
    let kind = if operator {
        "operator policy"
    } else {
        "policy"
    };
    style.banner(&format!(
        "Setting {kind} \"{}\" for pattern \"{}\" to \"{}\" with priority \"{}\" for vhost \"{vhost}\" ...",
        args.name, args.pattern, args.definition, args.priority
    ));
    let definition: Value = serde_json::from_str(&args.definition).map_err(|e| {
        CtlError::Usage(format!(
            "the definition is not JSON ({e}): {}",
            args.definition
        ))
    })?;
    let base = if operator {
        "operator-policies"
    } else {
        "policies"
    };
    let path = format!("/api/{base}/{}/{}", segment(vhost), segment(&args.name));
    api.put(
        &path,
        &json!({"pattern": args.pattern, "definition": definition,
                "priority": args.priority, "apply-to": args.apply_to}),
    )?;
    Ok(())
}

pub fn clear_policy(
    api: &Api,
    style: &Style,
    vhost: &str,
    operator: bool,
    name: &str,
) -> CtlResult<()> {
    let (kind, base) = match operator {
        true => ("operator policy", "operator-policies"),
        false => ("policy", "policies"),
    };
    style.banner(&format!(
        "Clearing {kind} \"{name}\" on vhost \"{vhost}\" ..."
    ));
    api.delete(&format!("/api/{base}/{}/{}", segment(vhost), segment(name)))
        .map_err(|_| CtlError::Data(format!("Parameter does not exist: {name}")))?;
    Ok(())
}
