// The dashboard's own behaviour, as a file: its Content-Security-Policy runs no inline script.
document.addEventListener("submit", (event) => {
  const question = event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});
document.addEventListener("change", (event) => {
  if (event.target.matches("select[data-autosubmit]")) event.target.form.requestSubmit();
});
// The category form: what does not apply to the chosen management hides, and what explains it shows.
function followManagement() {
  const management = document.querySelector("#category-form #id_management");
  if (!management) return;
  document.querySelectorAll("[data-hide-when-management]").forEach((el) => {
    el.hidden = el.dataset.hideWhenManagement === management.value;
    // What is hidden is not chosen: a provider-managed category grants members no operation.
    if (el.hidden) el.querySelectorAll("input[type=checkbox]").forEach((box) => { box.checked = false; });
  });
  document.querySelectorAll("[data-show-when-management]").forEach((el) => {
    el.hidden = el.dataset.showWhenManagement !== management.value;
  });
}
document.addEventListener("DOMContentLoaded", followManagement);
document.addEventListener("change", (event) => {
  if (event.target.matches("#category-form #id_management")) followManagement();
});
