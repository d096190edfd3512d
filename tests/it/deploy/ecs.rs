//! The ECS task definitions as ECS runs them (the thin config image over the exporter's image,
//! `command` over `CMD`, `healthCheck`), and validated against the ECS API model with
//! botocore's parameter validation (offline: nothing is sent).

use super::image::{image_container, image_files, Dockerfile};
use super::*;

pub const TASK_DEFINITIONS: [&str; 3] = [
    "deploy/ecs/service-task-definition.json",
    "deploy/ecs/sidecar-task-definition.json",
    EFS_TASK_DEFINITION,
];
/// The service's variant with its state file on an EFS volume.
const EFS_TASK_DEFINITION: &str = "deploy/ecs/service-efs-task-definition.json";

fn json(path: &str) -> Value {
    serde_json::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn exporter_definition(task: &Value) -> Value {
    task["containerDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "ssm-association-exporter")
        .expect("an ssm-association-exporter container")
        .clone()
}

/// What ECS starts for the exporter's container of `path`.
fn ecs_container(path: &str) -> Container {
    let task = json(path);
    let c = exporter_definition(&task);
    let image = image_container();
    let dockerfile = Dockerfile::parse("Dockerfile");
    // The task runs the thin config image, built FROM the exporter's (deploy/ecs/Dockerfile).
    assert!(c["image"]
        .as_str()
        .unwrap()
        .contains("ssm-association-exporter-config:"));
    let thin = Dockerfile::parse("deploy/ecs/Dockerfile");
    assert!(
        thin.instructions[0].1.contains("ssm-association-exporter:"),
        "FROM the exporter"
    );
    let mut files = image.files.clone();
    files.extend(image_files(&thin, "deploy/ecs"));
    let health = strings(&c["healthCheck"]["command"]);
    assert_eq!(
        health[0], "CMD",
        "{path}: ECS runs CMD (no shell in the image for CMD-SHELL)"
    );
    let env = c["environment"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // Task volumes (EFS) mounted into the container are where it may write.
    let volumes: Vec<&str> = task["volumes"]
        .as_array()
        .map(|v| v.iter().map(|v| v["name"].as_str().unwrap()).collect())
        .unwrap_or_default();
    let mut writable = Vec::new();
    for mount in c["mountPoints"].as_array().cloned().unwrap_or_default() {
        let source = mount["sourceVolume"].as_str().unwrap();
        assert!(
            volumes.contains(&source),
            "{path}: mountPoint {source} has no volume"
        );
        if mount["readOnly"] != true {
            let dir = mount["containerPath"].as_str().unwrap().to_string();
            files.retain(|p, _| !p.starts_with(&format!("{dir}/")));
            writable.push(dir);
        }
    }
    Container {
        artefact: path.to_string(),
        writable,
        argv: compose_argv(
            &dockerfile.exec_form("ENTRYPOINT"),
            &dockerfile.exec_form("CMD"),
            c.get("entryPoint").map(strings),
            c.get("command").map(strings),
        ),
        env,
        files,
        probes: vec![Probe::Exec(health[1..].to_vec())],
        ..Container::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_task_definition_starts_and_passes_its_health_check() {
    for path in TASK_DEFINITIONS {
        let run = run_container(&ecs_container(path)).await;
        assert_eq!(run.metrics_status, 200, "{path}");
        assert!(
            run.logs.lines().all(|l| l.starts_with('{')),
            "{path}: --log.format=json"
        );
        // Only the EFS variant keeps state, and on its volume (the run fails on a write
        // anywhere else: a read-only root filesystem).
        assert_eq!(
            run.state_files.iter().any(|f| f.ends_with("state.json")),
            path == EFS_TASK_DEFINITION,
            "{path}: {:?}",
            run.state_files
        );
    }
}

#[test]
fn the_task_definitions_are_hardened_and_the_service_runs_one_task_at_a_time() {
    for path in TASK_DEFINITIONS {
        let task = json(path);
        assert!(task["taskRoleArn"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:iam::"));
        assert_eq!(
            task["runtimePlatform"]["cpuArchitecture"], "ARM64",
            "{path}: Graviton"
        );
        let c = exporter_definition(&task);
        assert_eq!(c["portMappings"][0]["containerPort"], 9832);
        assert_eq!(c["readonlyRootFilesystem"], true);
        assert_eq!(c["user"], "65532:65532");
        assert_eq!(c["linuxParameters"]["capabilities"]["drop"][0], "ALL");
    }
    // The EFS variant is the service's task definition with a state volume: the same family
    // (service.json runs either), an encrypted EFS access point mounted where config-efs.yaml
    // puts the state file.
    let plain = json(TASK_DEFINITIONS[0]);
    let efs = json(EFS_TASK_DEFINITION);
    assert_eq!(efs["family"], plain["family"]);
    let volume = &efs["volumes"][0];
    let config = &volume["efsVolumeConfiguration"];
    assert_eq!(config["transitEncryption"], "ENABLED");
    assert!(config["authorizationConfig"]["accessPointId"]
        .as_str()
        .unwrap()
        .starts_with("fsap-"));
    let mount = &exporter_definition(&efs)["mountPoints"][0];
    assert_eq!(mount["sourceVolume"], volume["name"]);
    let state_file = ssm_association_exporter::config::load(&repo("deploy/ecs/config-efs.yaml"))
        .unwrap()
        .state_file
        .expect("config-efs.yaml has a state_file");
    assert!(state_file.starts_with(mount["containerPath"].as_str().unwrap()));
    // Otherwise the same: only the config file, the mount and the volume differ.
    let mut stripped = efs.clone();
    stripped.as_object_mut().unwrap().remove("volumes");
    let c = &mut stripped["containerDefinitions"][0];
    c.as_object_mut().unwrap().remove("mountPoints");
    c["command"][0] = plain["containerDefinitions"][0]["command"][0].clone();
    assert_eq!(
        stripped, plain,
        "{EFS_TASK_DEFINITION} vs {}",
        TASK_DEFINITIONS[0]
    );
    let sidecar = exporter_definition(&json(TASK_DEFINITIONS[1]));
    assert_eq!(
        sidecar["essential"], false,
        "an exporter problem never stops the app"
    );
    let service = json("deploy/ecs/service.json");
    assert_eq!(service["desiredCount"], 1);
    assert_eq!(
        service["deploymentConfiguration"]["maximumPercent"], 100,
        "never two pollers"
    );
    assert_eq!(
        service["taskDefinition"],
        json(TASK_DEFINITIONS[0])["family"]
    );
}

/// botocore's own validation of request parameters against the ECS service model.
const VALIDATE: &str = r#"
import json, sys
import botocore.session
from botocore.validate import validate_parameters
client = botocore.session.get_session().create_client(
    "ecs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
failed = False
for operation, path in zip(sys.argv[1::2], sys.argv[2::2]):
    shape = client.meta.service_model.operation_model(operation).input_shape
    try:
        validate_parameters(json.load(open(path)), shape)
        print(f"{path}: valid {operation} input")
    except Exception as error:
        failed = True
        print(f"{path}: {error}")
sys.exit(1 if failed else 0)
"#;

#[test]
fn the_task_definitions_and_service_are_valid_ecs_api_input() {
    let Some(mut python) = tool("python3-tools") else {
        return;
    };
    python.arg("-c").arg(VALIDATE);
    for path in TASK_DEFINITIONS {
        python.args(["RegisterTaskDefinition", path]);
    }
    python.args(["CreateService", "deploy/ecs/service.json"]);
    let out = run_ok(python);
    assert_eq!(out.matches(": valid ").count(), 4, "{out}");
    // And the validation does reject what ECS would reject: the old health check was a list
    // of strings too, so check the type errors botocore does catch.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    let mut task = json(TASK_DEFINITIONS[0]);
    task["containerDefinitions"][0]["healthCheck"]["interval"] = Value::from("30");
    task["containerDefinitions"][0]["portMapping"] = Value::from(9832);
    std::fs::write(&bad, task.to_string()).unwrap();
    let mut python = tool("python3-tools").unwrap();
    python
        .arg("-c")
        .arg(VALIDATE)
        .arg("RegisterTaskDefinition")
        .arg(&bad);
    let out = python.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("portMapping") && text.contains("interval"),
        "{text}"
    );
}
