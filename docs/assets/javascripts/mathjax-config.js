// MathJax 2 configuration, read before the site's own copy of MathJax.js (assets/mathjax/) loads.
// Markdown pages: pymdownx.arithmatex turns $...$ and $$...$$ into <script type="math/tex"> tags,
// which need no delimiter search. Notebook pages: Markdown cells keep their $...$ text, so tex2jax
// looks for delimiters there and only there (it ignores the page and processes notebook Markdown).
window.MathJax = {
  tex2jax: {
    inlineMath: [["$", "$"], ["\\(", "\\)"]],
    displayMath: [["$$", "$$"], ["\\[", "\\]"]],
    processEscapes: true,
    ignoreClass: "md-content",
    processClass: "jp-MarkdownOutput",
  },
  // The served copy ships the STIX-Web fonts only: use them, never look for others. MathJax's
  // placeholder font points at about:blank, which Chromium reports as a console error; a local()
  // source that is never found has the same effect without any request.
  "HTML-CSS": {
    availableFonts: [],
    preferredFont: null,
    webFont: "STIX-Web",
    imageFont: null,
    styles: { "@font-face": { "font-family": "MathJax_Blank", src: "local('MathJax_Blank')" } },
  },
  messageStyle: "none",
  showMathMenu: false,
  AuthorInit: function () {
    // Tells the site's browser test (and anyone curious) that typesetting has finished.
    MathJax.Hub.Register.StartupHook("End", function () {
      document.documentElement.setAttribute("data-mathjax", "done");
    });
  },
};
