// The "open in JupyterLab" links of the course website (docs/site/_templates/page.html).
// JupyterLab's address is not always http://localhost:8888: a second JupyterLab takes the next
// free port, a remote one is another machine's. The learner pastes the address `make lab`
// printed; this browser keeps its origin and base path (never the token) for every page, and
// every link on the page opens the notebook there.
(function () {
  "use strict";
  var KEY = "dlcourse.lab-address";

  // "http://localhost:8889/lab/tree/work/00_welcome.ipynb?token=..." -> "http://localhost:8889";
  // a hub's "https://hub.example/user/ana/lab?token=..." -> "https://hub.example/user/ana".
  function parse(text) {
    text = (text || "").trim();
    if (!text || /\s/.test(text)) return null;
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) text = "http://" + text;
    var url;
    try {
      url = new URL(text);
    } catch (error) {
      return null;
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") return null;
    if (!/^([a-z0-9-]+(\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])$/i.test(url.hostname)) return null;
    var base = url.pathname.split(/\/(?:lab|tree|notebooks|login)(?:\/|$)/)[0];
    return url.origin + base.replace(/\/+$/, "");
  }

  function stored() {
    try {
      return window.localStorage.getItem(KEY);
    } catch (error) {
      return null; // storage switched off: the links keep the default address
    }
  }

  function apply(address) {
    document.querySelectorAll("a.dlcourse-lab-link").forEach(function (link) {
      link.href = address + "/lab/tree/" + link.getAttribute("data-path");
    });
    document.querySelectorAll(".dlcourse-lab-address").forEach(function (element) {
      element.textContent = address;
    });
  }

  function start() {
    var address = stored();
    if (address) apply(address);
    document.querySelectorAll("form.dlcourse-lab-form").forEach(function (form) {
      var note = form.querySelector(".dlcourse-lab-note");
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        var chosen = parse(form.elements.address.value);
        if (!chosen) {
          note.textContent = "That is not an address: paste the http://... line make lab printed.";
          return;
        }
        try {
          window.localStorage.setItem(KEY, chosen);
        } catch (error) {
          // not kept: this page's links still change
        }
        apply(chosen);
        form.elements.address.value = "";
        note.textContent = "The links now open JupyterLab at " + chosen + ".";
      });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
