//! Spec handler -> [`Action`]: pure resolution of ports, hosts, schemes.

use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, ExecAction, GRPCAction, HTTPGetAction, LifecycleHandler, Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Action, Error, HttpGet, Scheme};

/// Resolves a port given as a number or as the name of one of the
/// container's ports.
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, Error> {
    let number = match port {
        IntOrString::Int(n) => i64::from(*n),
        IntOrString::String(name) => match name.parse::<i64>() {
            Ok(n) => n,
            Err(_) => container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| i64::from(p.container_port))
                .ok_or_else(|| Error::UnknownPort(name.clone()))?,
        },
    };
    number_port(number)
}

fn number_port(number: i64) -> Result<u16, Error> {
    u16::try_from(number).ok().filter(|p| *p > 0).ok_or(Error::PortOutOfRange(number))
}

fn host(given: Option<&str>, pod_ip: Option<&str>) -> Result<String, Error> {
    given.filter(|h| !h.is_empty()).or(pod_ip.filter(|ip| !ip.is_empty())).map(str::to_string).ok_or(Error::NoHost)
}

fn exec(action: &ExecAction) -> Result<Action, Error> {
    let command = action.command.clone().unwrap_or_default();
    if command.is_empty() {
        return Err(Error::EmptyCommand);
    }
    Ok(Action::Exec(command))
}

fn http_get(get: &HTTPGetAction, container: &Container, pod_ip: Option<&str>) -> Result<Action, Error> {
    let scheme = match get.scheme.as_deref().unwrap_or("HTTP") {
        s if s.eq_ignore_ascii_case("HTTP") => Scheme::Http,
        s if s.eq_ignore_ascii_case("HTTPS") => Scheme::Https,
        other => return Err(Error::Scheme(other.to_string())),
    };
    let path = get.path.clone().unwrap_or_default();
    let path = if path.starts_with('/') { path } else { format!("/{path}") };
    Ok(Action::HttpGet(HttpGet {
        scheme,
        host: host(get.host.as_deref(), pod_ip)?,
        port: resolve_port(&get.port, container)?,
        path,
        headers: get.http_headers.iter().flatten().map(|h| (h.name.clone(), h.value.clone())).collect(),
    }))
}

fn tcp(socket: &TCPSocketAction, container: &Container, pod_ip: Option<&str>) -> Result<Action, Error> {
    Ok(Action::TcpSocket { host: host(socket.host.as_deref(), pod_ip)?, port: resolve_port(&socket.port, container)? })
}

fn grpc(action: &GRPCAction, pod_ip: Option<&str>) -> Result<Action, Error> {
    Ok(Action::Grpc {
        host: host(None, pod_ip)?,
        port: number_port(i64::from(action.port))?,
        service: action.service.clone().unwrap_or_default(),
    })
}

/// The action of a probe. `pod_ip` is the default host.
pub fn from_probe(probe: &Probe, container: &Container, pod_ip: Option<&str>) -> Result<Action, Error> {
    if let Some(e) = &probe.exec {
        exec(e)
    } else if let Some(get) = &probe.http_get {
        http_get(get, container, pod_ip)
    } else if let Some(socket) = &probe.tcp_socket {
        tcp(socket, container, pod_ip)
    } else if let Some(g) = &probe.grpc {
        grpc(g, pod_ip)
    } else {
        Err(Error::NoAction)
    }
}

/// The action of a lifecycle hook (postStart, preStop).
pub fn from_lifecycle(
    handler: &LifecycleHandler,
    container: &Container,
    pod_ip: Option<&str>,
) -> Result<Action, Error> {
    if let Some(e) = &handler.exec {
        exec(e)
    } else if let Some(get) = &handler.http_get {
        http_get(get, container, pod_ip)
    } else if let Some(socket) = &handler.tcp_socket {
        tcp(socket, container, pod_ip)
    } else if let Some(sleep) = &handler.sleep {
        let secs = u64::try_from(sleep.seconds).map_err(|_| Error::NegativeSleep(sleep.seconds))?;
        Ok(Action::Sleep(Duration::from_secs(secs)))
    } else {
        Err(Error::NoAction)
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ContainerPort, HTTPHeader, SleepAction};

    use super::*;

    fn container() -> Container {
        Container {
            name: "app".into(),
            ports: Some(vec![ContainerPort { name: Some("http".into()), container_port: 8080, ..Default::default() }]),
            ..Default::default()
        }
    }

    #[test]
    fn named_ports_resolve_from_the_container() {
        let c = container();
        assert_eq!(resolve_port(&IntOrString::String("http".into()), &c), Ok(8080));
        assert_eq!(resolve_port(&IntOrString::String("81".into()), &c), Ok(81));
        assert_eq!(resolve_port(&IntOrString::Int(9000), &c), Ok(9000));
        assert_eq!(resolve_port(&IntOrString::String("metrics".into()), &c), Err(Error::UnknownPort("metrics".into())));
        assert_eq!(resolve_port(&IntOrString::Int(0), &c), Err(Error::PortOutOfRange(0)));
        assert_eq!(resolve_port(&IntOrString::Int(70000), &c), Err(Error::PortOutOfRange(70000)));
    }

    #[test]
    fn http_get_defaults_to_the_pod_ip_and_keeps_headers() {
        let probe = Probe {
            http_get: Some(HTTPGetAction {
                path: Some("healthz".into()),
                port: IntOrString::String("http".into()),
                scheme: Some("HTTPS".into()),
                http_headers: Some(vec![HTTPHeader { name: "X-Probe".into(), value: "1".into() }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let action = from_probe(&probe, &container(), Some("10.0.0.7")).unwrap();
        assert_eq!(
            action,
            Action::HttpGet(HttpGet {
                scheme: Scheme::Https,
                host: "10.0.0.7".into(),
                port: 8080,
                path: "/healthz".into(),
                headers: vec![("X-Probe".into(), "1".into())],
            })
        );
        assert_eq!(from_probe(&probe, &container(), None), Err(Error::NoHost));
    }

    #[test]
    fn rejects_what_cannot_run() {
        let empty = Probe { exec: Some(ExecAction { command: Some(vec![]) }), ..Default::default() };
        assert_eq!(from_probe(&empty, &container(), None), Err(Error::EmptyCommand));
        assert_eq!(from_probe(&Probe::default(), &container(), None), Err(Error::NoAction));
        let sleep = LifecycleHandler { sleep: Some(SleepAction { seconds: -1 }), ..Default::default() };
        assert_eq!(from_lifecycle(&sleep, &container(), None), Err(Error::NegativeSleep(-1)));
        let sleep = LifecycleHandler { sleep: Some(SleepAction { seconds: 3 }), ..Default::default() };
        assert_eq!(from_lifecycle(&sleep, &container(), None), Ok(Action::Sleep(Duration::from_secs(3))));
        let grpc = Probe { grpc: Some(GRPCAction { port: 9090, service: None }), ..Default::default() };
        assert_eq!(
            from_probe(&grpc, &container(), Some("10.0.0.7")),
            Ok(Action::Grpc { host: "10.0.0.7".into(), port: 9090, service: String::new() })
        );
    }
}
