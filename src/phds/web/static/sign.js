// Signs a reviewed study in the browser with the requester's Ed25519 key (WebCrypto), so the key never
// leaves this machine. The hub returns the exact bytes to sign (/portal/studies/signing-request); the
// signature is Ed25519 (RFC 8032) in unpadded URL-safe base64, as phds.trust.keys.KeyPair.sign writes it.
"use strict";

function pemToDer(pem) {
  const body = pem.replace(/-----(BEGIN|END) [A-Z ]+-----/g, "").replace(/\s+/g, "");
  const bin = atob(body);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out.buffer;
}

function base64url(bytes) {
  let bin = "";
  new Uint8Array(bytes).forEach((b) => { bin += String.fromCharCode(b); });
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromBase64(text) {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

async function signStudy(event) {
  const form = event.target;
  if (document.getElementById("signed-json").value) return; // signed: let the browser post it
  event.preventDefault();
  const status = document.getElementById("sign-status");
  const say = (text) => { status.textContent = text; };
  try {
    const keyFile = document.getElementById("key-file").files[0];
    const attestationFile = document.getElementById("attestation-file").files[0];
    if (!keyFile || !attestationFile) { say("Choose your key file and your attestation file."); return; }
    let attestation;
    try { attestation = JSON.parse(await attestationFile.text()); }
    catch (e) { say("The attestation file is not JSON."); return; }
    say("Preparing the signature…");
    const csrf = form.querySelector("input[name=csrf_token]").value;
    const answer = await fetch("/portal/studies/signing-request", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify({ spec: JSON.parse(document.getElementById("spec-json").value), attestation }),
    });
    if (!answer.ok) {
      const page = new DOMParser().parseFromString(await answer.text(), "text/html");
      const box = page.querySelector("[role=alert]");
      say(box ? box.textContent.replace(/\s+/g, " ").trim() : `The hub refused (HTTP ${answer.status}).`);
      return;
    }
    const request = await answer.json();
    let key;
    try {
      key = await crypto.subtle.importKey("pkcs8", pemToDer(await keyFile.text()), { name: "Ed25519" }, true, ["sign"]);
    } catch (e) { say("The key file is not an Ed25519 private key in PEM (PKCS #8)."); return; }
    const jwk = await crypto.subtle.exportKey("jwk", key);
    if (jwk.x !== request.requester_key) {
      say("This key is not the requester key your attestation names. Choose the matching key file.");
      return;
    }
    const signature = await crypto.subtle.sign({ name: "Ed25519" }, key, fromBase64(request.to_sign));
    // The hub's exact text with the signature in place: re-serialising the parsed study would turn
    // 3600.0 into 3600 and break its hash (JavaScript has one number type).
    document.getElementById("signed-json").value = request.signed_text.replace(request.placeholder, base64url(signature));
    say("Signed. Submitting…");
    form.submit();
  } catch (e) {
    say(`Signing failed: ${e.message}. Sign with 'phds study sign' and upload the signed file instead.`);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("sign-form");
  if (form) form.addEventListener("submit", signStudy);
});
