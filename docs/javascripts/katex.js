// Render the math that pymdownx.arithmatex (generic mode) leaves in .arithmatex elements,
// with the KaTeX files served from docs/assets/katex (no CDN: the docs work offline).
function renderMath() {
  for (const el of document.querySelectorAll(".arithmatex")) {
    renderMathInElement(el, {
      delimiters: [
        { left: "\\(", right: "\\)", display: false },
        { left: "\\[", right: "\\]", display: true },
      ],
      throwOnError: false,
    });
  }
}
if (typeof document$ !== "undefined") {
  document$.subscribe(renderMath); // mkdocs-material instant navigation
} else {
  document.addEventListener("DOMContentLoaded", renderMath);
}
