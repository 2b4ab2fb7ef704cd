"""Build checks: the book builds without warnings, searches in Chinese, typesets
math offline, loads its figures and points its Colab buttons at the right notebook.

The build here renders the stored notebook outputs (execution off): the nbval
run of the same suite proves that those outputs are what the code produces.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import nbsetup  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part["chapters"]]
    return files


def toc_notebooks() -> list[str]:
    return [f for f in toc_files() if (ROOT / f"{f}.ipynb").exists()]


# --- the README's two commands ------------------------------------------------------
def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.splitlines()[2] == "```bash", "the README must open with its code block"
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_readme_opens_with_build_and_test_commands():
    build, test = readme_commands()  # exactly two
    assert "jupyter-book build" in build and build.endswith(" .") and "[book]" in build
    assert " -W" in build, "a failing cell or a missing glue key must fail the newcomer's build"
    assert "pytest" in test and "tests book exercises" in test and "--nbval" in test
    for command in (build, test):
        assert "-c constraints.txt" in command, "CI installs the pinned versions"


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "README.md" in ci and 'eval "$test_command"' in ci
    extracted = subprocess.run(
        ["bash", "-c", ci.split("test_command=", 1)[1].split("\n", 1)[0].join(["echo ", ""])],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    assert extracted == readme_commands()[1]


# --- the Colab setup cell -----------------------------------------------------------


def test_every_notebook_starts_with_the_setup_cell():
    notebooks = nbsetup.all_notebooks()
    problems = {str(p.relative_to(ROOT)): nbsetup.problem(p) for p in notebooks}
    assert {p: why for p, why in problems.items() if why} == {}


def test_setup_check_flags_a_notebook_without_the_cell(tmp_path):
    path = tmp_path / "bare.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), path)
    assert "colab-setup" in nbsetup.problem(path)
    nbsetup.fix(path)
    assert nbsetup.problem(path) is None
    assert nbsetup.repository_url() in nbformat.read(path, as_version=4).cells[0].source


def test_setup_cell_is_a_no_op_when_installed():
    """Runs the cell's code: with adamw_lab importable it must not call pip."""
    code = nbsetup.setup_source().replace("subprocess.run(", "raise AssertionError(")
    exec(compile(code, "setup-cell", "exec"), {})


# --- figures --------------------------------------------------------------------------


def test_book_style_draws_chinese_without_missing_glyphs(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    from adamw_lab.book import use_book_style

    use_book_style()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, -1], label="解耦权重衰减")
    ax.set(title="学习率 η 与衰减系数 λ", xlabel="步数 t", ylabel="−‖w‖")
    ax.legend()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Glyph ... missing from font" is a UserWarning
        fig.savefig(tmp_path / "cjk.png")
    plt.close(fig)
    found = font_manager.findfont(font_manager.FontProperties(family=["sans-serif"]))
    assert "NotoSansCJK" in Path(found).name


# --- the build ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> Path:
    """Build the book once (warnings are errors) from the stored notebook outputs.

    ``ADAMW_LAB_BUILT_BOOK=/path/_build/html`` reuses a build instead (e.g. a
    private build of a few pages while writing them; select those tests with -k).
    """
    prebuilt = os.environ.get("ADAMW_LAB_BUILT_BOOK")
    if prebuilt:
        return Path(prebuilt)
    out = tmp_path_factory.mktemp("book")
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    config["execute"]["execute_notebooks"] = "off"
    config_path = out / "_config.yml"
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    result = subprocess.run(
        ["jupyter-book", "build", ".", "--config", str(config_path), "--path-output", str(out), "-W", "--keep-going"],
        cwd=ROOT, capture_output=True, text=True, timeout=1200,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return out / "_build" / "html"


def test_every_toc_page_is_built(built_book):
    for f in toc_files():
        assert (built_book / f"{f}.html").exists(), f


def test_math_renderer_ships_with_the_book(built_book):
    html = (built_book / "book" / "intro.html").read_text(encoding="utf-8")
    assert "cdn.jsdelivr.net" not in html and "mathjax@" not in html
    assert "_static/mathjax/tex-chtml.js" in html
    assert (built_book / "_static" / "mathjax" / "tex-chtml.js").exists()


def search_index(built_book: Path) -> dict:
    text = (built_book / "searchindex.js").read_text(encoding="utf-8")
    return json.loads(text[text.index("(") + 1 : text.rindex(")")])


@pytest.mark.parametrize("word", ["权重衰减", "学习率", "解耦", "偏差修正", "符号表"])
def test_chinese_search_index_finds_book_terms(built_book, word):
    index = search_index(built_book)
    docs = index["terms"].get(word, index["titleterms"].get(word))
    docs = [docs] if isinstance(docs, int) else docs or []
    assert index["docnames"].index("book/intro") in docs, f"{word!r} not indexed for the intro"


# --- the built pages in a browser, network off ---------------------------------------------


@pytest.fixture(scope="session")
def browser():
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (`apt-get install chromium`; .ci/run does it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (`pip install playwright`, part of the test extra)")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
        )
        yield browser
        browser.close()


def open_offline(browser, url: str):
    """A page whose every request outside file:// is refused, as with the network off."""
    page = browser.new_page()
    refused = []

    def route(r):
        if r.request.url.startswith(("file://", "data:")):
            r.continue_()
        else:
            refused.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(url)
    page.wait_for_load_state("load")
    return page, refused


def test_intro_typesets_math_offline(built_book, browser, tmp_path):
    page, _ = open_offline(browser, (built_book / "book" / "intro.html").as_uri())
    page.wait_for_selector("mjx-container", timeout=30_000)
    assert page.locator("mjx-container").count() >= 10
    assert page.locator("text=\\frac").count() == 0, "raw TeX left on the page"
    page.screenshot(path=str(tmp_path / "intro.png"))


def test_search_page_finds_chinese_words_offline(built_book, browser):
    url = (built_book / "search.html").as_uri() + "?q=" + "权重衰减"
    page, _ = open_offline(browser, url)
    page.wait_for_selector("p.search-summary", timeout=30_000)   # results arrive page by page; wait for all
    assert "引言" in page.locator("ul.search").inner_text()


@pytest.mark.parametrize("chapter", toc_notebooks() or [pytest.param(None, marks=pytest.mark.skip("no notebook in the toc yet"))])
def test_chapter_figures_math_and_colab_button(built_book, browser, chapter):
    page, _ = open_offline(browser, (built_book / f"{chapter}.html").as_uri())
    images = page.locator("article img")
    # chapters teach with figures; exercises and reference appendices (e.g. the compatibility table) may have none
    if chapter.startswith("book/") and not chapter.startswith("book/appendix/"):
        assert images.count() > 0, "no figure on the page"
    if "$" in (ROOT / f"{chapter}.ipynb").read_text(encoding="utf-8"):
        assert page.locator("mjx-container").count() > 0, "math was not typeset"
    broken = page.evaluate("[...document.querySelectorAll('article img')].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
    assert broken == []
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    repo = config["repository"]["url"].removeprefix("https://github.com/")
    colab = page.evaluate("[...document.querySelectorAll('a')].map(a => a.href).filter(h => h.includes('colab.research.google.com'))")
    assert colab, "no Colab button"
    assert all(h.endswith(f"/github/{repo}/blob/{config['repository']['branch']}/{chapter}.ipynb") for h in colab), colab


# --- the in-page explorers (adamw_lab.book.web): sliders that redraw offline ---------------


def has_explorer(chapter: str) -> bool:
    return "page_explorer(" in (ROOT / f"{chapter}.ipynb").read_text(encoding="utf-8")


def chapter_pages() -> list:
    """Every chapter notebook (not the appendices, not the exercises): each must have an in-page explorer."""
    return [f for f in toc_notebooks() if f.startswith("book/") and not f.startswith("book/appendix/")]


@pytest.mark.parametrize("chapter", chapter_pages() or [pytest.param(None, marks=pytest.mark.skip("no chapter in the toc yet"))])
def test_explorer_redraws_offline_with_the_package_values(built_book, browser, chapter):
    """Move each explorer's first slider: the figure redraws with the grid's numbers, readouts equal the package's."""
    from adamw_lab.book.web import call_readout

    page, refused = open_offline(browser, (built_book / f"{chapter}.html").as_uri())
    roots = page.locator(".adamw-explorer")
    assert roots.count() > 0, "no explorer on the page"
    page.wait_for_function("[...document.querySelectorAll('.adamw-explorer')].every(r => r.dataset.draws)", timeout=60_000)
    for k in range(roots.count()):
        root = roots.nth(k)
        spec = json.loads(root.locator("script.adamw-explorer-data").text_content())
        assert root.locator(".adamw-explorer-formula mjx-container").count() == 1, "formula not typeset"
        assert root.locator(".adamw-explorer-symbol").all_inner_texts() == [s["label"] for s in spec["sliders"]]
        title = spec["layout"]["title"]["text"] or spec["layout"]["xaxis"]["title"]["text"]
        assert page.evaluate("t => document.fonts.check(\"13px 'AdamW Explorer CJK'\", t)", title), "CJK web font missing"
        handle = root.element_handle()
        assert page.evaluate("r => { const f = r.querySelector('.adamw-explorer-formula'); "
                             "return f.scrollWidth <= f.clientWidth + 2 }", handle), "formula wider than the page"
        plotted = "r => JSON.stringify(r.querySelector('.adamw-explorer-plot').data.map(t => [t.x, t.y]))"
        before, draws = page.evaluate(plotted, handle), int(root.get_attribute("data-draws"))

        slider, first = root.locator("input[type=range]").first, spec["sliders"][0]
        slider.focus()
        page.keyboard.press("ArrowRight" if int(slider.input_value()) < len(first["values"]) - 1 else "ArrowLeft")
        page.wait_for_function("([r, n]) => Number(r.dataset.draws) > n", arg=[handle, draws], timeout=30_000)
        after = page.evaluate(plotted, handle)
        assert after != before, "the figure did not change"

        index = [int(v) for v in root.locator("input[type=range]").evaluate_all("es => es.map(e => e.value)")]
        setting = {s["name"]: s["values"][i] for s, i in zip(spec["sliders"], index)}
        assert root.locator(".adamw-explorer-value").first.inner_text() == first["text"][index[0]]
        frame = 0
        for s, i in zip(spec["sliders"], index):
            frame = frame * len(s["values"]) + i
        assert json.loads(after) == [[spec["arrays"][x], spec["arrays"][y]] for x, y in spec["frames"][frame]]
        shown = root.locator(".adamw-explorer-readout output").all_inner_texts()
        assert len(shown) == len(spec["readouts"])
        for text, readout in zip(shown, spec["readouts"]):
            assert float(text) == pytest.approx(call_readout(readout, setting), rel=5e-4), readout["label"]
    assert refused == []


def test_plotting_library_served_once_from_the_book(built_book):
    """Plotly comes from _static (never a CDN), only on pages with an explorer; their data stays small."""
    assert (built_book / "_static" / "plotly.min.js").stat().st_size > 1_000_000
    assert (built_book / "_static" / "adamw-explorer-font.woff").stat().st_size < 200_000
    intro = (built_book / "book" / "intro.html").read_text(encoding="utf-8")
    assert "plotly" not in intro
    for chapter in toc_notebooks():
        html = (built_book / f"{chapter}.html").read_text(encoding="utf-8")
        assert "cdn.plot.ly" not in html and "require.min.js" not in html, chapter
        assert "widget-state+json" not in html, f"{chapter}: dead ipywidgets state shipped"
        if has_explorer(chapter):
            assert html.count('src="../../_static/plotly.min.js"') == 1, chapter
            data = sum(len(c.split("</script>", 1)[0].encode()) for c in html.split('class="adamw-explorer-data">')[1:])
            assert data < 150_000, f"{chapter}: {data} bytes of explorer data"
