//! `deploy/`: the Kubernetes manifests agree with the gateway TOML their ConfigMap holds (ports,
//! probe paths, the Secret that feeds its `env:` references), that TOML passes the gateway's own
//! validation, and the containers run locked down. Nothing is built or applied here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{bail, Context};
use gateway_tests::process::workspace_root;
use serde::Deserialize;
use serde_yaml_ng::Value;

/// Every document of every `*.yaml` under `dir`, with the file it came from.
fn documents(dir: &Path) -> anyhow::Result<Vec<(String, Value)>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    files.sort();
    let mut out = Vec::new();
    for path in files.into_iter().filter(|p| p.extension().is_some_and(|x| x == "yaml")) {
        let text = std::fs::read_to_string(&path)?;
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc).with_context(|| format!("{} is not YAML", path.display()))?;
            out.push((path.display().to_string(), value));
        }
    }
    Ok(out)
}

fn find<'a>(docs: &'a [(String, Value)], kind: &str, name: &str) -> anyhow::Result<&'a Value> {
    docs.iter()
        .map(|(_, d)| d)
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
        .with_context(|| format!("no {kind} {name} in deploy/kubernetes/base"))
}

fn str_of<'a>(v: &'a Value, what: &str) -> anyhow::Result<&'a str> {
    v.as_str().with_context(|| format!("{what} is not a string: {v:?}"))
}

#[test]
fn kubernetes_manifests_match_the_gateway_config_they_carry() -> anyhow::Result<()> {
    let base = workspace_root().join("deploy/kubernetes/base");
    let docs = documents(&base)?;
    let kustomization = &docs.iter().find(|(f, _)| f.ends_with("kustomization.yaml")).context("no kustomization")?.1;
    let listed: BTreeSet<&str> =
        kustomization["resources"].as_sequence().into_iter().flatten().filter_map(Value::as_str).collect();
    let files: BTreeSet<String> = docs
        .iter()
        .filter_map(|(f, _)| Path::new(f).file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|f| f != "kustomization.yaml")
        .collect();
    assert_eq!(listed.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>(), files, "kustomization resources");

    let deployment = find(&docs, "Deployment", "gateway")?;
    assert_eq!(deployment["spec"]["replicas"].as_u64(), Some(2));
    let pod = &deployment["spec"]["template"]["spec"];
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let container = &pod["containers"][0];

    // The config: mounted from the ConfigMap at the path the container's args name.
    let args: Vec<&str> = container["args"].as_sequence().into_iter().flatten().filter_map(Value::as_str).collect();
    let config_path = args.iter().skip_while(|a| **a != "--config").nth(1).context("no --config in args")?;
    let (mount_dir, key) = config_path.rsplit_once('/').context("config path has no directory")?;
    let mount = container["volumeMounts"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|m| m["mountPath"].as_str() == Some(mount_dir))
        .context("nothing mounted at the config directory")?;
    let volume = pod["volumes"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == mount["name"])
        .context("the config mount has no volume")?;
    let configmap = find(&docs, "ConfigMap", str_of(&volume["configMap"]["name"], "configMap name")?)?;
    let toml = str_of(&configmap["data"][key], "ConfigMap data")?;

    // Its env: references are keys of the Secret the container takes its environment from.
    let secret_name = str_of(&container["envFrom"][0]["secretRef"]["name"], "envFrom secretRef")?;
    let secret = find(&docs, "Secret", secret_name)?;
    let secret_keys: BTreeMap<String, String> = secret["stringData"]
        .as_mapping()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
        .collect();
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for reference in toml.split('"').filter_map(|s| s.strip_prefix("env:")) {
        let value = secret_keys
            .get(reference)
            .with_context(|| format!("env:{reference} is not a key of Secret {secret_name}"))?;
        env.insert(reference.to_owned(), value.clone());
    }
    env.insert("GATEWAY_SECRET".to_owned(), gateway_tests::config::TEST_SECRET.to_owned());
    let config = gateway::config::load_str(toml, "configmap.toml", &|name: &str| env.get(name).cloned())
        .map_err(|e| anyhow::anyhow!("the ConfigMap's TOML is invalid:\n{e}"))?;

    // Ports: the listeners of the TOML, by name.
    let ports: BTreeMap<&str, u64> = container["ports"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["name"].as_str()?, p["containerPort"].as_u64()?)))
        .collect();
    assert_eq!(ports.get("http").copied(), Some(u64::from(config.server.listen.port())), "container port http");
    let admin = config.server.admin_listen.context("the ConfigMap's TOML has no admin_listen")?;
    assert_eq!(ports.get("admin").copied(), Some(u64::from(admin.port())), "container port admin");
    for (probe, path) in [("livenessProbe", "/_gateway/health"), ("readinessProbe", "/_gateway/ready")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe} path");
        let port = match &get["port"] {
            Value::String(name) => ports.get(name.as_str()).copied(),
            other => other.as_u64(),
        };
        assert_eq!(port, Some(u64::from(config.server.listen.port())), "{probe} port");
    }
    let service = find(&docs, "Service", "gateway")?;
    let target = &service["spec"]["ports"][0]["targetPort"];
    assert!(
        target.as_str() == Some("http") || target.as_u64() == ports.get("http").copied(),
        "Service targetPort {target:?}"
    );
    assert_eq!(&service["spec"]["selector"], &deployment["spec"]["selector"]["matchLabels"]);

    // Locked down, and kept available through voluntary disruptions.
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    let sc = &container["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(sc["capabilities"]["drop"][0].as_str(), Some("ALL"));
    let pdb = find(&docs, "PodDisruptionBudget", "gateway")?;
    for (k, v) in pdb["spec"]["selector"]["matchLabels"].as_mapping().context("PDB selector")? {
        if &labels[k] != v {
            bail!("the PodDisruptionBudget selects {k:?}={v:?}, which the pods do not carry");
        }
    }
    Ok(())
}

#[test]
fn the_container_and_systemd_unit_are_locked_down() -> anyhow::Result<()> {
    let root = workspace_root().join("deploy");
    let containerfile = std::fs::read_to_string(root.join("Containerfile"))?;
    let user = containerfile.lines().rev().find_map(|l| l.strip_prefix("USER ")).context("no USER")?;
    assert!(
        user.split(':').all(|id| id.parse::<u32>().is_ok_and(|n| n != 0)),
        "USER {user} is not a numeric non-root user"
    );
    assert!(containerfile.lines().filter(|l| l.starts_with("FROM ")).count() >= 2, "not multi-stage");
    let unit = std::fs::read_to_string(root.join("systemd/gateway.service"))?;
    for line in ["DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes"] {
        assert!(unit.lines().any(|l| l == line), "gateway.service lacks {line}");
    }
    Ok(())
}
