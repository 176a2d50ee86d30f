//! Connection URLs hold whatever a user's credentials hold: a user and a password
//! with `@ : / ? # %`, spaces and non-ASCII, written literally or as `${VAR}`, reach
//! a real PostgreSQL server through `DATABASE_URL` and the real `psql` client.

use crate::stack::{Project, psql};

/// A password with every character a URL gives meaning to, and some it can't hold.
const TRICKY: &str = "p@ss:w/rd?#% é";

#[test]
fn a_database_url_holds_any_user_and_password_and_connects() {
    // A server to connect to: a managed one, with a role of awkward credentials.
    let server = Project::new("urlsrv");
    server.setup(&["auth-service"], "");
    server.sync();
    let admin = server.env_values("auth-service");
    let role = "we@ird user:1";
    psql(&admin["DATABASE_URL"], &format!("create role \"{role}\" login password '{}'", TRICKY.replace('\'', "''")));

    // A project that reaches it as an external service, the password written
    // half literally and half as a secret from `.env`.
    let client = Project::new("urlcli");
    client.write(
        "registry/registry.yaml",
        &format!(
            r#"version: 1
packages:
  app:
    implies: [{{ service: db, params: {{ db_name: auth }} }}]
services:
  db: {{ kind: postgres }}
profiles:
  corp:
    mode: external
    services:
      db: {{ host: 127.0.0.1, port: "{port}", user: "{role}", password: "p@ss:${{PASS_TAIL}}" }}
"#,
            port = admin["DB_PORT"],
        ),
    );
    client.write(".env", "PASS_TAIL=\"w/rd?#% é\"\n");
    client.write(
        "hsm.yaml",
        &format!("version: 1\nproject: {}\nprofile: corp\nregistries: [./registry]\npackages: [app]\n", client.name),
    );
    client.sync();
    let env = client.env_values("app");
    assert_eq!(env["DB_PASSWORD"], TRICKY, "the variable itself is the password, as written");
    assert_eq!(env["DB_USER"], role);
    assert!(
        env["DATABASE_URL"]
            .starts_with("postgresql://we%40ird%20user%3A1:p%40ss%3Aw%2Frd%3F%23%25%20%C3%A9@127.0.0.1:"),
        "{}",
        env["DATABASE_URL"]
    );
    assert_eq!(psql(&env["DATABASE_URL"], "select current_user"), role);
    let run = client.hsm(&["run", "app", "--", "sh", "-c", "psql \"$DATABASE_URL\" -tAc 'select current_database()'"]);
    assert_eq!(run.expect(0).stdout.trim(), "auth");
}
