//! `docker-compose.yml` and the `Dockerfile` say the same as the binaries: every service runs a
//! real subcommand, every `VEIL_*` variable is a setting the binary accepts, and the ports,
//! health checks, volumes and Kafka address agree with the settings each service ends up with.
//! (No Docker engine runs here; the settings are read through `veil config show`.)

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Compose {
    services: BTreeMap<String, Service>,
    volumes: BTreeMap<String, Option<BTreeMap<String, String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Service {
    image: Option<String>,
    build: Option<String>,
    command: Vec<String>,
    environment: BTreeMap<String, String>,
    ports: Vec<String>,
    volumes: Vec<String>,
    healthcheck: Option<Healthcheck>,
}

#[derive(Debug, Deserialize)]
struct Healthcheck {
    test: Vec<String>,
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn compose() -> Compose {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).expect("compose file");
    marked_yaml::from_yaml(0, &text).expect("docker-compose.yml parses")
}

/// What the service's binary would read: `veil config show` with the service's environment, run
/// from a directory holding the image's `/etc/veil` files (the repository's).
fn effective_settings(service: &Service) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(["config", "show"])
        .current_dir(root())
        .env_clear()
        .envs(&service.environment)
        .output()
        .expect("veil runs");
    assert!(
        output.status.success(),
        "settings refused: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("json settings")
}

fn port_of(address: &str) -> &str {
    address.rsplit(':').next().expect("host:port")
}

/// The container side of `HOST:CONTAINER` port mappings.
fn published(service: &Service) -> Vec<&str> {
    service
        .ports
        .iter()
        .map(|mapping| port_of(mapping))
        .collect()
}

/// Whether `path` lies on one of the service's mounted volumes.
fn mounted<'a>(service: &'a Service, path: &str) -> Option<&'a str> {
    service.volumes.iter().find_map(|volume| {
        let mut parts = volume.split(':');
        let (name, target) = (parts.next()?, parts.next()?);
        path.starts_with(target).then_some(name)
    })
}

#[test]
fn kafka_is_the_official_image_in_kraft_mode() {
    let compose = compose();
    let kafka = &compose.services["kafka"];
    assert!(
        kafka
            .image
            .as_deref()
            .is_some_and(|image| image.starts_with("apache/kafka:"))
    );
    let roles = &kafka.environment["KAFKA_PROCESS_ROLES"];
    assert!(
        roles.contains("broker") && roles.contains("controller"),
        "{roles}"
    );
    assert!(kafka.healthcheck.is_some());
    assert!(mounted(kafka, &kafka.environment["KAFKA_LOG_DIRS"]).is_some());
}

#[test]
fn every_veil_service_runs_a_real_subcommand_with_settings_the_binary_accepts() {
    let compose = compose();
    let advertised = compose.services["kafka"].environment["KAFKA_ADVERTISED_LISTENERS"]
        .split("//")
        .nth(1)
        .expect("PLAINTEXT://host:port")
        .to_owned();
    for name in ["gateway", "processor", "reporting"] {
        let service = &compose.services[name];
        assert_eq!(service.image.as_deref(), Some("veil:latest"), "{name}");
        let subcommand = &service.command[0];
        let help = Command::new(env!("CARGO_BIN_EXE_veil"))
            .args([subcommand.as_str(), "--help"])
            .output()
            .expect("veil runs");
        assert!(
            help.status.success(),
            "{name}: `veil {subcommand}` is not a subcommand"
        );
        for key in service.environment.keys() {
            assert!(
                key.starts_with("VEIL_"),
                "{name}: {key} is not a Veil setting"
            );
        }
        let settings = effective_settings(service);
        if name != "reporting" {
            assert_eq!(
                settings["kafka"]["bootstrap_servers"],
                advertised.as_str(),
                "{name}"
            );
        }
    }
    assert_eq!(compose.services["gateway"].build.as_deref(), Some("."));
}

#[test]
fn ports_health_checks_and_volumes_match_the_settings() {
    let compose = compose();
    let gateway = &compose.services["gateway"];
    let settings = effective_settings(gateway);
    let listen = settings["gateway"]["listen"].as_str().expect("listen");
    assert!(
        listen.starts_with("0.0.0.0:"),
        "reachable from outside the container"
    );
    assert!(published(gateway).contains(&port_of(listen)));
    let health = gateway
        .healthcheck
        .as_ref()
        .expect("health check")
        .test
        .join(" ");
    assert!(
        health.contains(&format!(":{}/readyz", port_of(listen))),
        "{health}"
    );
    let keys = settings["gateway"]["keystore"].as_str().expect("keystore");
    let keys_volume = mounted(gateway, keys).expect("keys on a volume");

    let processor = &compose.services["processor"];
    let settings = effective_settings(processor);
    let data_dir = settings["processor"]["data_dir"]
        .as_str()
        .expect("data_dir");
    let parquet_volume = mounted(processor, data_dir).expect("parquet on a volume");
    assert_eq!(
        mounted(processor, keys),
        Some(keys_volume),
        "retention shreds the gateway's keys"
    );
    let metrics = settings["processor"]["metrics_listen"]
        .as_str()
        .expect("metrics_listen");
    assert!(metrics.starts_with("0.0.0.0:"));
    assert!(published(processor).contains(&port_of(metrics)));

    let reporting = &compose.services["reporting"];
    let settings = effective_settings(reporting);
    let listen = settings["reporting"]["listen"]
        .as_str()
        .expect("reporting listen");
    assert!(listen.starts_with("0.0.0.0:"));
    assert!(published(reporting).contains(&port_of(listen)));
    let health = reporting
        .healthcheck
        .as_ref()
        .expect("health check")
        .test
        .join(" ");
    assert!(
        health.contains(&format!(":{}/healthz", port_of(listen))),
        "{health}"
    );
    assert_eq!(
        mounted(
            reporting,
            settings["processor"]["data_dir"]
                .as_str()
                .expect("data_dir")
        ),
        Some(parquet_volume),
        "reporting reads what the processor writes"
    );
    for volume in [keys_volume, parquet_volume] {
        assert!(compose.volumes.contains_key(volume), "{volume} is declared");
    }
}

#[test]
fn the_image_carries_the_policy_tenants_and_settings_where_the_services_look() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile");
    let copy = dockerfile
        .lines()
        .find(|line| line.starts_with("COPY allowlist.yaml"))
        .expect("a COPY of the configuration");
    for file in [
        "allowlist.yaml",
        "tenants.yaml",
        "viewers.yaml",
        "veil.toml",
    ] {
        assert!(copy.contains(file), "{file}");
        assert!(root().join(file).is_file());
    }
    assert!(copy.ends_with("/etc/veil/"));
    assert!(dockerfile.contains("WORKDIR /etc/veil"));
    assert!(dockerfile.contains("ENTRYPOINT [\"veil\"]"));
    assert!(dockerfile.contains("--locked"));
}
