//! The `/docs` page, loaded in headless Chromium: the interactive API page
//! renders from the vendored assets and lists every products operation, in
//! open mode and, with tokens, from the public document an anonymous
//! browser gets.

use std::path::PathBuf;
use std::process::Command;

use shop::Config;

fn chromium() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("KEEL_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_page_lists_the_products_operations() {
    let Some(browser) = chromium() else {
        let required = std::env::var("KEEL_TEST_REQUIRE").unwrap_or_default();
        assert!(
            !required
                .split(',')
                .any(|r| matches!(r.trim(), "all" | "chromium")),
            "KEEL_TEST_REQUIRE asks for chromium, which is not installed (apt-get install chromium)"
        );
        eprintln!("SKIPPED: no Chromium (set KEEL_CHROMIUM or install Debian's chromium)");
        return;
    };
    for tokens in [None, Some("staff:staff-token-0123456789abcdef0123456789")] {
        render_and_check(&browser, tokens).await;
    }
}

async fn render_and_check(browser: &std::path::Path, tokens: Option<&str>) {
    let browser = browser.to_path_buf();
    let dir = std::env::temp_dir().join(format!("shop-docs-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let db = format!("sqlite://{}?mode=rwc", dir.join("shop.db").display());
    let mut config = Config::for_database(db);
    config.tokens = tokens.map(|t| shop::Tokens::parse(t).expect("tokens"));
    let server = shop::start(config, Vec::new())
        .await
        .expect("the shop starts");
    let url = format!("{}/docs/", server.url());
    let profile = dir.join("profile");
    let dom = tokio::task::spawn_blocking(move || {
        Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--virtual-time-budget=15000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .output()
            .expect("chromium runs")
    })
    .await
    .expect("the browser task");
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        dom.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout);
    // The page was rendered by the script (not just served): every products
    // operation has its block, with its path and operation id.
    for op in [
        "list_products",
        "create_product",
        "count_products",
        "get_product",
        "update_product",
        "delete_product",
        "product_history",
        "restore_product",
    ] {
        assert!(
            dom.contains(&format!("href=\"#/products/{op}\"")),
            "{op} is not listed (tokens: {tokens:?})"
        );
    }
    for path in [
        "/products",
        "/products/count",
        "/products/{id}",
        "/products/{id}/history",
        "/products/{id}/restore",
    ] {
        assert!(
            dom.contains(&format!("data-path=\"{path}\"")),
            "{path} is not listed (tokens: {tokens:?})"
        );
    }
    assert!(dom.contains("opblock opblock-patch"));
    assert!(!dom.contains("errors-wrapper"), "the page shows errors");
}
