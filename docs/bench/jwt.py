#!/usr/bin/env python3
"""Makes an RS256 key with openssl, writes its JWKS, and prints a token for the benchmark's
jwt-mode mcpgate: the issuer is nginx (which serves the JWKS), the audience the server's URL."""
import base64, json, subprocess, sys, time, pathlib

out = pathlib.Path(sys.argv[1])
audience = sys.argv[2]
issuer = "http://127.0.0.1:18091/idp"
key = out / "idp-key.pem"
if not key.exists():
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
b64 = lambda data: base64.urlsafe_b64encode(data).rstrip(b"=").decode()
modulus = subprocess.run(["openssl", "rsa", "-in", str(key), "-noout", "-modulus"],
                         check=True, capture_output=True, text=True).stdout.strip().split("=")[1]
jwk = {"kty": "RSA", "kid": "bench", "alg": "RS256", "use": "sig",
       "n": b64(bytes.fromhex(modulus)), "e": b64((65537).to_bytes(3, "big"))}
(out / "idp").mkdir(exist_ok=True)
(out / "idp" / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
header = b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "bench"}).encode())
now = int(time.time())
payload = b64(json.dumps({"iss": issuer, "sub": "bench-user", "aud": audience, "iat": now,
                          "exp": now + 3600, "scope": "pets", "client_id": "wrk"}).encode())
signed = f"{header}.{payload}".encode()
signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(key)], input=signed,
                           check=True, capture_output=True).stdout
print(f"{header}.{payload}.{b64(signature)}")
