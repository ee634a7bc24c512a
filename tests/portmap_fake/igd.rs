//! A fake UPnP IGD on loopback: an SSDP answerer whose LOCATION points at a tiny HTTP server
//! serving a device description, an SCPD and SOAP answers, well-behaved or hostile.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::BOUND;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    Good,
    /// AddPortMapping answers 718 ConflictInMappingEntry; AddAnyPortMapping grants 40000.
    PortInUse,
    GarbageDescription,
    /// An 8 MiB description (igd-next stops reading at 1 MiB).
    HugeDescription,
    /// A description whose body never finishes.
    EndlessDescription,
    GarbageSoap,
    HugeSoap,
    EndlessSoap,
}

pub struct Igd {
    pub ssdp: SocketAddr,
    /// "Action PROTO port" for each SOAP call received.
    pub actions: Arc<Mutex<Vec<String>>>,
}

pub async fn start(mode: Mode) -> Igd {
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_addr = http.local_addr().unwrap();
    let ssdp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let ssdp_addr = ssdp.local_addr().unwrap();
    let actions: Arc<Mutex<Vec<String>>> = Arc::default();
    tokio::spawn(async move {
        let _ = tokio::time::timeout(BOUND, async {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = ssdp.recv_from(&mut buf).await {
                if !buf[..n].starts_with(b"M-SEARCH") {
                    continue;
                }
                let r = format!(
                    "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\
                     USN: uuid:fake::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nLOCATION: http://{http_addr}/desc.xml\r\n\r\n"
                );
                let _ = ssdp.send_to(r.as_bytes(), from).await;
            }
        })
        .await;
    });
    let a = actions.clone();
    tokio::spawn(async move {
        let _ = tokio::time::timeout(BOUND, async {
            while let Ok((s, _)) = http.accept().await {
                tokio::spawn(tokio::time::timeout(BOUND, serve(s, mode, a.clone())));
            }
        })
        .await;
    });
    Igd {
        ssdp: ssdp_addr,
        actions,
    }
}

const DESC: &str = r#"<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0"><device>
<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType>
<serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>
<serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId><SCPDURL>/scpd.xml</SCPDURL>
<controlURL>/ctl</controlURL><eventSubURL>/evt</eventSubURL></service></serviceList>
</device></deviceList></device></deviceList></device></root>"#;

fn args(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("<argument><name>{n}</name><direction>in</direction></argument>"))
        .collect()
}

fn scpd() -> String {
    let add = [
        "NewRemoteHost",
        "NewExternalPort",
        "NewProtocol",
        "NewInternalPort",
        "NewInternalClient",
        "NewEnabled",
        "NewPortMappingDescription",
        "NewLeaseDuration",
    ];
    let del = ["NewRemoteHost", "NewExternalPort", "NewProtocol"];
    format!(
        r#"<?xml version="1.0"?><scpd xmlns="urn:schemas-upnp-org:service-1-0"><actionList>
<action><name>AddPortMapping</name><argumentList>{a}</argumentList></action>
<action><name>AddAnyPortMapping</name><argumentList>{a}</argumentList></action>
<action><name>DeletePortMapping</name><argumentList>{d}</argumentList></action>
<action><name>GetExternalIPAddress</name><argumentList><argument><name>NewExternalIPAddress</name>
<direction>out</direction></argument></argumentList></action>
</actionList></scpd>"#,
        a = args(&add),
        d = args(&del)
    )
}

fn envelope(inner: &str) -> String {
    format!(
        r#"<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>{inner}</s:Body></s:Envelope>"#
    )
}

fn ok(action: &str, inner: &str) -> String {
    envelope(&format!(
        r#"<u:{action}Response xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1">{inner}</u:{action}Response>"#
    ))
}

fn fault(code: u16, desc: &str) -> String {
    envelope(&format!(
        r#"<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>{code}</errorCode><errorDescription>{desc}</errorDescription></UPnPError></detail></s:Fault>"#
    ))
}

/// The text between `<tag>` and `</tag>` in `body`, if any.
fn field<'a>(body: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let Some(i) = body.find(&open) else { return "" };
    let rest = &body[i + open.len()..];
    &rest[..rest.find('<').unwrap_or(rest.len())]
}

enum Reply {
    Full(u16, String),
    Huge,
    Endless,
}

async fn serve(mut s: TcpStream, mode: Mode, actions: Arc<Mutex<Vec<String>>>) {
    // Read the head (bounded), then the body by Content-Length (bounded).
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        let Ok(n) = s.read(&mut buf).await else {
            return;
        };
        if n == 0 || req.len() > 64 * 1024 {
            return;
        }
        req.extend_from_slice(&buf[..n]);
        if let Some(i) = req.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&req[..head_end]).to_string();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0)
        .min(64 * 1024);
    while req.len() < head_end + len {
        let Ok(n) = s.read(&mut buf).await else {
            return;
        };
        if n == 0 {
            return;
        }
        req.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8_lossy(&req[head_end..]).to_string();
    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
    let reply = match path.as_str() {
        "/desc.xml" => match mode {
            Mode::GarbageDescription => Reply::Full(200, "<root><device><<<&&&\u{0}garbage".into()),
            Mode::HugeDescription => Reply::Huge,
            Mode::EndlessDescription => Reply::Endless,
            _ => Reply::Full(200, DESC.into()),
        },
        "/scpd.xml" => Reply::Full(200, scpd()),
        "/ctl" => {
            let action = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .starts_with("soapaction:")
                        .then(|| l.to_string())
                })
                .and_then(|l| {
                    l.split('#')
                        .nth(1)
                        .map(|a| a.trim_end_matches('"').to_string())
                })
                .unwrap_or_default();
            let proto = field(&body, "NewProtocol");
            let port = field(&body, "NewExternalPort");
            actions
                .lock()
                .unwrap()
                .push(format!("{action} {proto} {port}"));
            match (mode, action.as_str()) {
                (Mode::GarbageSoap, _) => Reply::Full(200, "\u{1b}[2J not xml at all".repeat(50)),
                (Mode::HugeSoap, _) => Reply::Huge,
                (Mode::EndlessSoap, _) => Reply::Endless,
                (Mode::PortInUse, "AddPortMapping") => {
                    Reply::Full(500, fault(718, "ConflictInMappingEntry"))
                }
                (_, "AddAnyPortMapping") => Reply::Full(
                    200,
                    ok(
                        "AddAnyPortMapping",
                        "<NewReservedPort>40000</NewReservedPort>",
                    ),
                ),
                (_, "GetExternalIPAddress") => Reply::Full(
                    200,
                    ok(
                        "GetExternalIPAddress",
                        "<NewExternalIPAddress>203.0.113.7</NewExternalIPAddress>",
                    ),
                ),
                (_, a @ ("AddPortMapping" | "DeletePortMapping")) => Reply::Full(200, ok(a, "")),
                _ => Reply::Full(500, fault(401, "Invalid Action")),
            }
        }
        _ => Reply::Full(404, String::new()),
    };
    let _ = match reply {
        Reply::Full(code, b) => {
            let r = format!(
                "HTTP/1.1 {code} X\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
                b.len()
            );
            s.write_all(r.as_bytes()).await
        }
        Reply::Huge => {
            // 8 MiB announced and (as far as the client reads) sent: the client must stop early.
            let size = 8 << 20;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {size}\r\n\r\n<root>"
            );
            let _ = s.write_all(head.as_bytes()).await;
            let chunk = vec![b'a'; 64 * 1024];
            for _ in 0..(size / chunk.len()) {
                if s.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            Ok(())
        }
        Reply::Endless => {
            let head =
                "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 100000\r\n\r\n<root>";
            let _ = s.write_all(head.as_bytes()).await;
            // Never finish: hold the connection until the client gives up (or BOUND).
            let _ = s.read(&mut buf).await;
            Ok(())
        }
    };
}
