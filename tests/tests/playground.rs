//! The playground page in a real browser: tests/browser/playground.mjs drives Debian's chromium
//! (headless, through puppeteer-core) against a gateway on the fixture models with an API key,
//! and saves screenshots under target/playground/. Also: `--playground false` turns it off.

use std::process::Command;
use std::time::Duration;

use e2e::{TempDir, root, start_gateway, start_gateway_with_envs};

#[tokio::test]
async fn the_playground_works_in_a_real_browser() {
    let browser_tests = root().join("tests/browser");
    assert!(
        browser_tests.join("node_modules/puppeteer-core").is_dir(),
        "tests/browser/node_modules is missing: run scripts/setup.sh (npm ci there, and chromium)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(std::path::Path::new(&chromium).is_file(), "{chromium} is missing: run scripts/setup.sh");
    let data = TempDir::new("playground");
    let key = "playground-key";
    let gateway = start_gateway_with_envs(&data, &[], &[("API_KEY", key)]);
    gateway.wait_ready(Duration::from_secs(30)).await;

    let page = reqwest::get(gateway.url("/")).await.unwrap();
    assert_eq!(page.status(), 200, "the page itself is open; the API behind it asks for the key");
    assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("connect-src 'self'"));
    let html = page.text().await.unwrap();
    assert!(html.len() < 64 * 1024 && !html.contains("http://") && !html.contains("https://"), "no CDN, small");

    let screenshots = root().join("target/playground");
    std::fs::create_dir_all(&screenshots).unwrap();
    let output = Command::new("node")
        .arg("playground.mjs")
        .current_dir(&browser_tests)
        .env("GATEWAY_URL", gateway.url("/"))
        .env("API_KEY", key)
        .env("CHROMIUM", &chromium)
        .env("SCREENSHOTS", &screenshots)
        .output()
        .expect("node on PATH");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(output.status.success(), "the browser test failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    for shot in ["playground-desktop.png", "playground-phone.png"] {
        let size = std::fs::metadata(screenshots.join(shot)).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "{shot} is {size} bytes");
    }
}

#[tokio::test]
async fn the_playground_can_be_turned_off() {
    let data = TempDir::new("playground-off");
    let gateway = start_gateway(&data, &["--playground", "false"]);
    gateway.wait_ready(Duration::from_secs(30)).await;
    let response = reqwest::get(gateway.url("/")).await.unwrap();
    assert_eq!(response.status(), 404);
    let listing = reqwest::get(gateway.url("/collections")).await.unwrap();
    assert_eq!(listing.status(), 200, "the API stays");
}
