//! The status page as a person sees it: a real collector with three real agents (each
//! watching a TCP service with its `tcp` probe), opened in Debian's headless Chromium
//! through chromedriver with the reader's HTTP Basic login, at a laptop and a phone width.
//!
//! In sequence, one cluster for the whole suite:
//! 1. what is served: the page's files behind the reader auth, a browser's 401 with
//!    `WWW-Authenticate` (the API's realm), the strict headers, no secret in any byte;
//! 2. the page shows the healthy cluster (screenshots at both widths, decoded and sized;
//!    no horizontal overflow on the phone);
//! 3. one node's service is stopped for real: the page turns Degraded with the reason
//!    *without a reload* (the navigation's `timeOrigin` and a sentinel set after load are
//!    unchanged), screenshots again;
//! 4. a node named like markup: it renders as text, nothing runs, nothing is parsed.
//!
//! Screenshots are kept in `target/test-artifacts/status_page/` (not committed).

mod harness;

use harness::browser::{self, Browser};
use harness::fixtures::{now_ms, report_headers, tcp_probe, Node, Target};
use harness::{Agent, Collector, DEADLINE};
use serde_json::Value;
use sr_protocol::TOKEN_HEADER;

const SUITE: &str = "status_page";
const LAPTOP: (u32, u32) = (1280, 900);
const PHONE: (u32, u32) = (390, 844);
const NAMES: [&str; 3] = ["page-m1", "page-m2", "page-m3"];
/// A node name a careless page would turn into markup and script.
const HOSTILE: &str = "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\">";

/// GET `path` with these headers: the whole answer (status, headers, body).
fn get(
    rt: &tokio::runtime::Runtime,
    c: &Collector,
    path: &str,
    h: &[(&str, &str)],
) -> sr_tls::Response {
    rt.block_on(c.client().get(
        &c.url(path),
        h,
        std::time::Duration::from_secs(20),
        16 << 20,
    ))
    .expect("the collector answers")
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {b64}")
}

/// Every secret the cluster holds: its tokens and its private keys' PEM bodies.
fn secrets(c: &Collector) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = ["admin", "manager", "db", "broker"]
        .iter()
        .map(|r| (format!("{r} token"), c.token(r)))
        .collect();
    // The collector's and the agents' (which live under its directory here).
    let keys: Vec<_> = walk(&c.dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "pem" || x == "key"))
        .collect();
    for k in keys {
        let Ok(pem) = std::fs::read_to_string(&k) else {
            continue;
        };
        if !pem.contains("PRIVATE KEY") {
            continue;
        }
        // A 40-character run from the middle of the key's base64.
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        if body.len() > 80 {
            out.push((k.display().to_string(), body[20..60].to_string()));
        }
    }
    assert!(
        out.len() >= 4 + 4,
        "four tokens, the TLS key and three node keys: {out:?}"
    );
    out
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// What the page shows now: overall status, node cards, the events it received.
fn page_state(b: &Browser) -> Value {
    b.js("const o = document.getElementById('overall');
         return {
           status: o ? o.dataset.status : null,
           nodes: document.querySelectorAll('#nodes article.node').length,
           refreshes: Number(document.documentElement.dataset.refreshes || 0),
           lastEventId: document.documentElement.dataset.lastEventId || null,
           live: document.getElementById('live').dataset.state,
           timeOrigin: performance.timeOrigin,
           navigations: performance.getEntriesByType('navigation').length,
           sentinel: window.__srSentinel || null,
           pwned: window.__pwned || null,
         };")
}

/// Both widths: a screenshot of the viewport (decoded, the viewport's size), the status
/// in the page's text at that moment, and no horizontal overflow.
fn shoot_both(b: &Browser, dir: &std::path::Path, moment: &str, status: &str) {
    for (label, (w, h)) in [("laptop", LAPTOP), ("phone", PHONE)] {
        b.resize(w, h);
        let fit = harness::wait_for(&format!("the {label} viewport"), DEADLINE, || {
            let v = b.js(
                "return [window.innerWidth, window.innerHeight, devicePixelRatio,
                         document.documentElement.scrollWidth];",
            );
            let inner = v[0].as_u64()? as u32;
            (inner <= w && inner + 20 >= w).then_some(v)
        });
        let (inner_w, inner_h, dpr, scroll_w) = (
            fit[0].as_f64().unwrap(),
            fit[1].as_f64().unwrap(),
            fit[2].as_f64().unwrap(),
            fit[3].as_f64().unwrap(),
        );
        assert!(
            scroll_w <= inner_w,
            "{moment} at {label} width: horizontal overflow ({scroll_w} > {inner_w})"
        );
        let text = b.text();
        assert!(
            text.contains(status),
            "{moment} at {label}: the page does not say {status}:\n{text}"
        );
        let (path, (pw, ph)) = b.screenshot(dir, &format!("{moment}-{label}"));
        assert_eq!(
            (pw, ph),
            (
                (inner_w * dpr).round() as u32,
                (inner_h * dpr).round() as u32
            ),
            "{}: the screenshot is not the viewport",
            path.display()
        );
        assert!(pw >= PHONE.0 && ph >= 400, "{}: {pw}x{ph}", path.display());
    }
    b.resize(LAPTOP.0, LAPTOP.1);
}

#[test]
fn the_status_page_shows_the_cluster_and_follows_it_live() {
    if !browser::available(SUITE) {
        return;
    }
    let artifacts = browser::artifacts(SUITE);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = Collector::start_in_temp_dir(&[
        ("required_types", "[\"manager\"]"),
        ("flap_threshold", "1000"),
    ]);
    let mut targets: Vec<Target> = NAMES.iter().map(|_| Target::new(&rt)).collect();
    let mut agents: Vec<Agent> = NAMES
        .iter()
        .zip(&targets)
        .map(|(name, t)| {
            let mut a = Agent::for_collector(
                &c.dir.join("agents").join(name),
                name,
                "manager",
                &c,
                vec![tcp_probe("Service", &t.addr())],
                None,
            );
            a.start();
            a
        })
        .collect();
    let admin = c.token("admin");
    let reader = basic(sr_collector::setup::ADMIN_USER, &admin);
    c.wait("the three managers OK", DEADLINE, |s| {
        let nodes = s.service("manager").map(|m| &m.nodes);
        NAMES.iter().all(|n| {
            nodes
                .and_then(|m| m.get(*n))
                .is_some_and(|v| v.status == sr_protocol::NodeStatus::Ok)
        })
    });

    // 1. What is served, and how.
    let none = get(&rt, &c, "/", &[]);
    assert_eq!(none.status, 401);
    let challenge = none.headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Basic realm=\"status-reporter\""),
        "{challenge}"
    );
    let api = get(&rt, &c, "/api/v3.1/cluster-status", &[]);
    assert_eq!(api.status, 401);
    assert_eq!(
        api.headers.get("www-authenticate"),
        none.headers.get("www-authenticate"),
        "one realm for the page and the API"
    );
    let wrong = get(&rt, &c, "/", &[("Authorization", &basic("admin", "wrong"))]);
    assert_eq!(wrong.status, 401);
    let reporter = get(&rt, &c, "/", &[(TOKEN_HEADER, &c.token("manager"))]);
    assert_eq!(
        reporter.status, 403,
        "a reporter token does not read the page"
    );
    let redirect = get(&rt, &c, "/ui/", &[]);
    assert_eq!(redirect.status, 308);
    assert_eq!(redirect.headers["location"], "/");
    let mut served = Vec::new();
    for (path, kind) in [
        ("/", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/app.css", "text/css"),
    ] {
        for auth in [
            ("Authorization", reader.as_str()),
            (TOKEN_HEADER, admin.as_str()),
        ] {
            let r = get(&rt, &c, path, &[auth]);
            assert_eq!(r.status, 200, "{path}");
            let h = |k: &str| r.headers.get(k).map(|v| v.to_str().unwrap().to_string());
            assert!(h("content-type").unwrap().starts_with(kind), "{path}");
            let csp = h("content-security-policy").expect("a CSP");
            assert!(
                csp.contains("script-src 'self'") && !csp.contains("unsafe"),
                "{csp}"
            );
            assert!(csp.contains("default-src 'none'"), "{csp}");
            assert_eq!(h("x-content-type-options").as_deref(), Some("nosniff"));
            assert_eq!(h("cache-control").as_deref(), Some("no-store"));
            served.push((path, r.body.to_vec()));
        }
    }

    // 2. The healthy cluster, in a browser that logs in with HTTP Basic.
    let b = Browser::start(&rt, &artifacts.join("chromedriver.log"), LAPTOP.0, LAPTOP.1);
    let url = format!(
        "https://{}:{}@localhost:{}/",
        sr_collector::setup::ADMIN_USER,
        admin,
        c.addr.port()
    );
    b.goto(&url);
    let healthy = harness::wait_for("the page to show the healthy cluster", DEADLINE, || {
        let s = page_state(&b);
        (s["status"] == "OK" && s["nodes"] == 3 && s["live"] == "live").then_some(s)
    });
    b.js("window.__srSentinel = 'set after load'; return null;");
    let text = b.text();
    for n in NAMES {
        assert!(text.contains(n), "{n} is not on the page:\n{text}");
    }
    let timelines =
        b.js("return document.querySelectorAll('#nodes svg.timeline rect.seg').length;");
    assert!(
        timelines.as_u64().unwrap() >= 3,
        "a timeline per node: {timelines}"
    );
    shoot_both(&b, &artifacts, "healthy", "OK");

    // 3. Stop page-m3's service for real: its agent reports Fail, the stream says so, and
    //    the page (not reloaded) shows Degraded with the reason.
    targets[2].close();
    let degraded = harness::wait_for("the page to show Degraded", DEADLINE, || {
        let s = page_state(&b);
        (s["status"] == "Degraded").then_some(s)
    });
    assert_eq!(
        degraded["timeOrigin"], healthy["timeOrigin"],
        "the page was reloaded"
    );
    assert_eq!(degraded["navigations"], 1);
    assert_eq!(
        degraded["sentinel"], "set after load",
        "the page was reloaded"
    );
    assert!(
        degraded["lastEventId"].is_string(),
        "the change came over the event stream: {degraded}"
    );
    // The reasons the API gives are the ones the page shows.
    let view = rt.block_on(c.view());
    let manager = &view["services"]["manager"];
    assert_eq!(manager["status"], "Degraded", "{view}");
    let text = b.text();
    assert!(text.contains("Degraded"), "{text}");
    for r in manager["reasons"].as_array().unwrap() {
        let msg = r["message"].as_str().unwrap();
        assert!(
            text.contains(msg),
            "reason {msg:?} is not on the page:\n{text}"
        );
        assert!(text.contains(r["code"].as_str().unwrap()), "{text}");
    }
    assert!(
        manager["reasons"].as_array().unwrap().len() >= 2,
        "the stopped service's reason and the service's own: {manager}"
    );
    let card = b.js(
        "const c = document.querySelector('#nodes article.node[data-node=\"page-m3\"]');
         return c ? [c.querySelector('.badge').dataset.status, c.innerText] : null;",
    );
    assert_eq!(card[0], "Fail", "{card}");
    // The transition is drawn on page-m3's timeline, from the event.
    let ticks = b.js("return document.querySelectorAll(
           '#nodes article.node[data-node=\"page-m3\"] svg.timeline line.tick').length;");
    assert!(
        ticks.as_u64().unwrap() >= 1,
        "no transition on the timeline: {ticks}"
    );
    shoot_both(&b, &artifacts, "degraded", "Degraded");

    // 4. A node named like markup, reported while the page is open.
    let mut hostile = Node::new("manager", "page-hostile");
    hostile.name = HOSTILE.to_string();
    let token = c.token("manager");
    let (body, sig) = hostile.next("Degraded", now_ms());
    let (code, v) = rt.block_on(c.put(&hostile.path(), &report_headers(&token, &sig), body));
    assert_eq!(code, 200, "{v}");
    harness::wait_for("the hostile name on the page, as text", DEADLINE, || {
        b.text().contains(HOSTILE).then_some(())
    });
    let s = page_state(&b);
    assert!(s["pwned"].is_null(), "script from a node name ran: {s}");
    let parsed =
        b.js("return document.querySelectorAll('main script, main img, main iframe').length;");
    assert_eq!(parsed, 0, "a node name became markup");
    assert_eq!(
        s["timeOrigin"], healthy["timeOrigin"],
        "the page was reloaded"
    );
    b.screenshot(&artifacts, "hostile-name-laptop");

    // No secret in any byte served, nor in the page as the browser holds it.
    let dom = b.js("return document.documentElement.outerHTML;");
    served.push(("DOM", dom.as_str().unwrap().as_bytes().to_vec()));
    for (what, secret) in secrets(&c) {
        for (path, bytes) in &served {
            let text = String::from_utf8_lossy(bytes);
            assert!(!text.contains(&secret), "{what} in {path}");
        }
    }
    drop(b);
    for a in &mut agents {
        a.kill();
    }
    targets.clear();
}
