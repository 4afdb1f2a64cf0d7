// Depot's API docs (/api/docs): Swagger UI over the document picked (Depot's
// own, or a dialect's). A script file of its own, since the page's policy
// allows no inline script.
window.addEventListener("DOMContentLoaded", function () {
  var picker = document.getElementById("document");
  function show(url) {
    window.ui = SwaggerUIBundle({
      url: url,
      dom_id: "#swagger-ui",
      deepLinking: true,
      // No badge fetched from validator.swagger.io: nothing leaves this server.
      validatorUrl: null,
      presets: [SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
    });
  }
  picker.addEventListener("change", function () {
    show(picker.value);
  });
  show(picker.value);
});
