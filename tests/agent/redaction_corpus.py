"""A corpus of realistic log lines for the redaction tests.

Fake secrets are assembled from pieces so that no complete token literal sits in
the repository for secret scanners to trip over.

* ``MASKED``: ``(line, expected)`` pairs -- the exact redacted output.
* ``KEPT``: lines that must come out byte-for-byte unchanged.
* ``SECRETS``: every fake secret value used in ``MASKED``; none may survive.
"""

from __future__ import annotations

R = "[REDACTED]"

ENROLL = "flte_" + "Zq8Xv2Lm4Np6Rt0Yw3Kb" + "Hc5Dj7Fg9Ss1Aa2Ee4Uu"
API = "flta_" + "9fK2mQ7xL0pR4sT8vW1y" + "B3dF5hJ6kN0cE2gI4jM8"
GHP = "ghp_" + "1a2B3c4D5e6F7g8H9i0J" + "kLmNoPqRsTuVwXyZ12"
GHS = "ghs_" + "Qw3Er5Ty7Ui9Op1As3Df" + "5Gh7Jk9Lz1Xc3Vb5Nm"
GH_PAT = "github_pat_" + "11ABCDEFG0abcdefghijkl" + "_mnopqrstuvwxyz0123456789ABCDEFGHIJ"
SLACK = "xoxb-" + "123456789012-1234567890123-" + "AbCdEfGhIjKlMnOpQrStUvWx"
STRIPE_SK = "sk_live_" + "51HqLyjWDarjtT1zdp7dc" + "XgWnpkBcQSdQ9rAQT"
STRIPE_TEST = "sk_test_" + "4eC39HqLyjWDarjtT1zdp7dc"
STRIPE_RK = "rk_live_" + "51HqLyjWDarjtT1zdp7dcXg"
STRIPE_PK = "pk_live_" + "TYooMQauvdEDq54NiTphI7jx"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiJhZ18xMjMiLCJleHAiOjE3MDAwMDAwMDB9"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
AKIA = "AKIA" + "IOSFODNN7EXAMPLE"
ASIA = "ASIA" + "Y34FZKBOKMUTVV7A"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"
AZURE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsu" + "Fq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
BASIC = "YWRtaW46aHVudGVyMg=="
DOCKER_AUTH = "ZGVwbG95" + "Omh1bnRlcjI="  # base64("deploy:hunter2"), as in config.json
MYSQL_PW = "MyS3cret" + "Pw"
AWS_SECRET_2 = "h4Xq9Lz0/Rt2Vw8Ks1" + "Pm+Nb7Yc3Jd6Fg5Ua0eTiO"
PEM_BODY = [
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun",
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK",
    "LxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW/VDL5AaWTg0nLVkjRo",
    "9z+tLAN5W3Yi2zQ3fWwYZ1vdo2yGQw==",
]

SECRETS = [
    ENROLL,
    API,
    GHP,
    GHS,
    GH_PAT,
    SLACK,
    STRIPE_SK,
    STRIPE_TEST,
    STRIPE_RK,
    STRIPE_PK,
    JWT,
    AKIA,
    ASIA,
    AWS_SECRET,
    AZURE_KEY,
    BASIC,
    DOCKER_AUTH,
    MYSQL_PW,
    "My S3cret",
    AWS_SECRET_2,
    "s3cr3tP4ss",
    "hunter2",
    *PEM_BODY,
]

MASKED: list[tuple[str, str]] = [
    # This project's tokens.
    (
        f"2026-11-27T03:12:58Z INFO enroll: using token {ENROLL} from FLEET_ENROLL_TOKEN",
        "2026-11-27T03:12:58Z INFO enroll: using token [REDACTED:enrollment-token] "
        "from FLEET_ENROLL_TOKEN",
    ),
    (
        f'POST /v1/enroll body={{"token": "{ENROLL}", "name": "edge-1"}}',
        'POST /v1/enroll body={"token": "[REDACTED:enrollment-token]", "name": "edge-1"}',
    ),
    (
        f"GET /v1/agents 200 3.1ms Authorization: Bearer {API}",
        f"GET /v1/agents 200 3.1ms Authorization: Bearer {R}",
    ),
    (f"fleet agents list --api-token={API}", "fleet agents list --api-token=[REDACTED:api-token]"),
    # Passwords in URLs and DSNs.
    (
        "connecting to postgres://app:s3cr3tP4ss@db.internal:5432/fleet?sslmode=require",
        f"connecting to postgres://app:{R}@db.internal:5432/fleet?sslmode=require",
    ),
    (
        "DATABASE_URL=postgresql://fleet_rw:s3cr3tP4ss@10.0.3.7:5432/fleet",
        f"DATABASE_URL=postgresql://fleet_rw:{R}@10.0.3.7:5432/fleet",
    ),
    (
        "mysql://root:hunter2@mysql.svc.cluster.local:3306/orders timed out after 5000 ms",
        f"mysql://root:{R}@mysql.svc.cluster.local:3306/orders timed out after 5000 ms",
    ),
    (
        "mongo uri=mongodb+srv://reporter:s3cr3tP4ss@cluster0.ab1cd.mongodb.net/metrics"
        "?retryWrites=true&w=majority",
        f"mongo uri=mongodb+srv://reporter:{R}@cluster0.ab1cd.mongodb.net/metrics"
        "?retryWrites=true&w=majority",
    ),
    (
        "mongodb://admin:hunter2@mongo-0:27017,mongo-1:27017/?replicaSet=rs0",
        f"mongodb://admin:{R}@mongo-0:27017,mongo-1:27017/?replicaSet=rs0",
    ),
    (
        "amqp://guest:hunter2@rabbit:5672/%2F connection reset by peer",
        f"amqp://guest:{R}@rabbit:5672/%2F connection reset by peer",
    ),
    (
        "amqps://svc:s3cr3tP4ss@mq.example.com:5671/prod",
        f"amqps://svc:{R}@mq.example.com:5671/prod",
    ),
    ("redis://:s3cr3tP4ss@cache.internal:6379/0", f"redis://:{R}@cache.internal:6379/0"),
    (
        "rediss://default:hunter2@cache.example.com:6380",
        f"rediss://default:{R}@cache.example.com:6380",
    ),
    (
        "proxy HTTPS_PROXY=http://proxyuser:hunter2@proxy.corp:3128 NO_PROXY=.internal",
        f"proxy HTTPS_PROXY=http://proxyuser:{R}@proxy.corp:3128 NO_PROXY=.internal",
    ),
    (
        "fetch https://deploy:s3cr3tP4ss@artifacts.example.com/agent.tar.gz -> 401",
        f"fetch https://deploy:{R}@artifacts.example.com/agent.tar.gz -> 401",
    ),
    (
        "postgres://app:p@ss@word@db:5432/x failed",
        f"postgres://app:{R}@db:5432/x failed",
    ),
    (
        "jdbc:postgresql://db.internal:5432/fleet?user=app&password=s3cr3tP4ss&ssl=true",
        f"jdbc:postgresql://db.internal:5432/fleet?user=app&password={R}&ssl=true",
    ),
    (
        "jdbc:sqlserver://sql.internal:1433;databaseName=fleet;user=sa;password=hunter2;",
        f"jdbc:sqlserver://sql.internal:1433;databaseName=fleet;user=sa;password={R};",
    ),
    (
        "jdbc:oracle:thin:scott/s3cr3tP4ss@//ora.internal:1521/ORCL",
        f"jdbc:oracle:thin:scott/{R}@//ora.internal:1521/ORCL",
    ),
    (
        "Server=tcp:fleet.database.windows.net,1433;User ID=fleet;Password=s3cr3tP4ss;Encrypt=True",
        f"Server=tcp:fleet.database.windows.net,1433;User ID=fleet;Password={R};Encrypt=True",
    ),
    (
        "Driver={ODBC Driver 18};Server=db;Uid=app;Pwd=hunter2;",
        f"Driver={{ODBC Driver 18}};Server=db;Uid=app;Pwd={R};",
    ),
    # key=value, key: value, JSON, YAML, env.
    ("db password=hunter2 host=db.internal", f"db password={R} host=db.internal"),
    ("level=debug msg=login user=bob passwd=hunter2", f"level=debug msg=login user=bob passwd={R}"),
    ("client_secret=s3cr3tP4ss client_id=fleet-ui", f"client_secret={R} client_id=fleet-ui"),
    (
        "oauth refresh: access_token=abc123def456 refresh_token=zyx987 expires_in=3600",
        f"oauth refresh: access_token={R} refresh_token={R} expires_in=3600",
    ),
    ("GET /cb?code=xyz&api_key=0a1b2c3d4e5f HTTP/1.1", f"GET /cb?code=xyz&api_key={R} HTTP/1.1"),
    ("apikey = 'hunter2'", f"apikey = '{R}'"),
    (
        '{"level":"info","msg":"config","password":"s3cr3tP4ss","port":5432}',
        f'{{"level":"info","msg":"config","password":"{R}","port":5432}}',
    ),
    (
        '{"user": "app", "db_password": "correct horse battery staple", "timeout_ms": 250}',
        f'{{"user": "app", "db_password": "{R}", "timeout_ms": 250}}',
    ),
    (
        "{'user': 'app', 'password': 'hunter2', 'host': 'db'}",
        f"{{'user': 'app', 'password': '{R}', 'host': 'db'}}",
    ),
    (
        '{"msg": "request body {\\"apiKey\\": \\"0a1b2c\\", \\"n\\": 1}"}',
        f'{{"msg": "request body {{\\"apiKey\\": \\"{R}\\", \\"n\\": 1}}"}}',
    ),
    ('{"secret": 12345678}', f'{{"secret": {R}}}'),
    ("password: hunter2", f"password: {R}"),
    (
        "  db_password: correct horse battery staple  # rotated monthly",
        f"  db_password: {R}  # rotated monthly",
    ),
    ("    - token: abcdefgh", f"    - token: {R}"),
    ("clientSecret: s3cr3tP4ss", f"clientSecret: {R}"),
    ("export POSTGRES_PASSWORD=hunter2", f"export POSTGRES_PASSWORD={R}"),
    ('export FLEET_API_TOKEN="not a real one"', f'export FLEET_API_TOKEN="{R}"'),
    (
        "docker run -e MYSQL_ROOT_PASSWORD=hunter2 mysql:8",
        f"docker run -e MYSQL_ROOT_PASSWORD={R} mysql:8",
    ),
    (
        "config: {Host:db Port:5432 Password:secret User:app}",
        f"config: {{Host:db Port:5432 Password:{R} User:app}}",
    ),
    ("Settings(token='abc', retries=3)", f"Settings(token='{R}', retries=3)"),
    ("exec: pg_dump --password s3cr3tP4ss --host db", f"exec: pg_dump --password {R} --host db"),
    ("DEBUG config loaded, secret_key: Zx81kq", f"DEBUG config loaded, secret_key: {R}"),
    ('password := "hunter2"', f'password := "{R}"'),
    # Authorization and API-key headers.
    (f"> Authorization: Bearer {API}", f"> Authorization: Bearer {R}"),
    (f"authorization: Basic {BASIC}", f"authorization: Basic {R}"),
    (
        f'headers={{"Authorization": "Bearer {JWT}", "Accept": "*/*"}}',
        f'headers={{"Authorization": "Bearer {R}", "Accept": "*/*"}}',
    ),
    (f"Proxy-Authorization: Basic {BASIC}", f"Proxy-Authorization: Basic {R}"),
    ("Authorization: token 0123456789abcdef0123", f"Authorization: token {R}"),
    ("X-Api-Key: 8c6976e5b5410415bde908bd4dee15df", f"X-Api-Key: {R}"),
    ("x-api-key: abcdefgh", f"x-api-key: {R}"),
    ("X-Vault-Token: hvs.CAESIJlU", f"X-Vault-Token: {R}"),
    (
        f"curl -H 'Authorization: Bearer {GHP}' https://api.github.com",
        f"curl -H 'Authorization: Bearer {R}' https://api.github.com",
    ),
    # AWS.
    (
        f"aws: using access key {AKIA} for s3://fleet-logs",
        "aws: using access key [REDACTED:aws-access-key-id] for s3://fleet-logs",
    ),
    (
        f"sts: session {ASIA} expires 2026-11-27T04:00:00Z",
        "sts: session [REDACTED:aws-access-key-id] expires 2026-11-27T04:00:00Z",
    ),
    (f"aws_secret_access_key = {AWS_SECRET}", f"aws_secret_access_key = {R}"),
    (f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}", f"AWS_SECRET_ACCESS_KEY={R}"),
    (
        f'{{"AccessKeyId": "{ASIA}", "SecretAccessKey": "{AWS_SECRET}"}}',
        '{"AccessKeyId": "[REDACTED:aws-access-key-id]", '
        '"SecretAccessKey": "[REDACTED:aws-secret-key]"}',
    ),
    (f"{AKIA},{AWS_SECRET}", "[REDACTED:aws-access-key-id],[REDACTED:aws-secret-key]"),
    # Third-party tokens recognised by shape.
    (
        f"git clone https://x-access-token:{GHS}@github.com/acme/agent.git",
        f"git clone https://x-access-token:{R}@github.com/acme/agent.git",
    ),
    (
        f"GITHUB_TOKEN {GHP} has scopes repo,read:org",
        "GITHUB_TOKEN [REDACTED:github-token] has scopes repo,read:org",
    ),
    (f"gh auth: {GH_PAT}", "gh auth: [REDACTED:github-token]"),
    (
        f"slack notify failed (invalid_auth) token {SLACK}",
        "slack notify failed (invalid_auth) token [REDACTED:slack-token]",
    ),
    (f"stripe client init {STRIPE_SK}", "stripe client init [REDACTED:stripe-key]"),
    (
        f"stripe test key {STRIPE_TEST}; restricted {STRIPE_RK}; publishable {STRIPE_PK}",
        "stripe test key [REDACTED:stripe-key]; restricted [REDACTED:stripe-key]; "
        "publishable [REDACTED:stripe-key]",
    ),
    (f"jwt rejected: exp in the past ({JWT})", "jwt rejected: exp in the past ([REDACTED:jwt])"),
    (f"ws upgrade ?access_token={JWT}&v=1", "ws upgrade ?access_token=[REDACTED:jwt]&v=1"),
    # Azure.
    (
        "DefaultEndpointsProtocol=https;AccountName=fleetlogs;AccountKey="
        + AZURE_KEY
        + ";EndpointSuffix=core.windows.net",
        f"DefaultEndpointsProtocol=https;AccountName=fleetlogs;AccountKey={R}"
        ";EndpointSuffix=core.windows.net",
    ),
    (
        "Endpoint=sb://fleet.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;"
        "SharedAccessKey=" + AZURE_KEY,
        "Endpoint=sb://fleet.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;"
        f"SharedAccessKey={R}",
    ),
    (
        "GET https://fleetlogs.blob.core.windows.net/c/x.log?sv=2022-11-02&se=2026-12-01&sig=AbC%2Bd1e2F3",
        f"GET https://fleetlogs.blob.core.windows.net/c/x.log?sv=2022-11-02&se=2026-12-01&sig={R}",
    ),
    # PEM, all in one line (escaped newlines, as in JSON logs).
    (
        '{"private_key": "-----BEGIN PRIVATE KEY-----\\n'
        + PEM_BODY[0]
        + '\\n-----END PRIVATE KEY-----\\n"}',
        '{"private_key": "-----BEGIN PRIVATE KEY-----[REDACTED:private-key]'
        '-----END PRIVATE KEY-----\\n"}',
    ),
    (
        "key=-----BEGIN EC PRIVATE KEY-----" + PEM_BODY[1] + "-----END EC PRIVATE KEY----- loaded",
        "key=-----BEGIN EC PRIVATE KEY-----[REDACTED:private-key]"
        "-----END EC PRIVATE KEY----- loaded",
    ),
    # Bare values after "key: " in running text: masked unless they read as prose.
    ("user: app, password: hunter, host: db", f"user: app, password: {R}, host: db"),
    ("DB config -> user: app password: hunter", f"DB config -> user: app password: {R}"),
    ("exec: mysqldump --password hunter --host db", f"exec: mysqldump --password {R} --host db"),
    # Go http.Header / map dumps, XML, curl.
    (
        "req headers map[Accept:[*/*] Authorization:[Bearer abc123def456ghi789] X-Api-Key:[k3y]]",
        f"req headers map[Accept:[*/*] Authorization:[Bearer {R}] X-Api-Key:[{R}]]",
    ),
    ("opts map[password:hunter user:app]", f"opts map[password:{R} user:app]"),
    (
        "<datasource><user>app</user><password>hunter2</password></datasource>",
        f"<datasource><user>app</user><password>{R}</password></datasource>",
    ),
    (
        "+ curl -fsS -u admin:hunter2 https://cp.example.com/v1/health",
        f"+ curl -fsS -u admin:{R} https://cp.example.com/v1/health",
    ),
    # Cookies and webhook URLs.
    ("> Cookie: sid=abc123; theme=dark", f"> Cookie: sid={R}; theme={R}"),
    (
        "< Set-Cookie: session=s3cr3tP4ss; Path=/; Max-Age=3600; HttpOnly; Secure",
        f"< Set-Cookie: session={R}; Path=/; Max-Age=3600; HttpOnly; Secure",
    ),
    (
        "alert sink https://hooks.slack.com/services/T0AB12CD3/B0EF45GH6/xYzAbC123dEf456 "
        "returned 404",
        f"alert sink https://hooks.slack.com/services/{R} returned 404",
    ),
    # A PEM body line seen on its own.
    (PEM_BODY[0], "[REDACTED:base64-blob]"),
    # Docker's config.json "auth" (base64 of user:password), JSON and YAML forms.
    (
        f'{{"auths": {{"registry.example.com": {{"auth": "{DOCKER_AUTH}"}}}}}}',
        f'{{"auths": {{"registry.example.com": {{"auth": "{R}"}}}}}}',
    ),
    (
        f'{{"auth":"{DOCKER_AUTH}","email":"ops@example.com"}}',
        f'{{"auth":"{R}","email":"ops@example.com"}}',
    ),
    (f"      auth: {DOCKER_AUTH}", f"      auth: {R}"),
    (f"registry login auth={DOCKER_AUTH} ok", f"registry login auth={R} ok"),
    ("basic_auth: deploy:hunter2", f"basic_auth: {R}"),
    # MySQL clients take the password attached to -p.
    (
        f"+ mysql -h db.internal -u root -p{MYSQL_PW} orders",
        f"+ mysql -h db.internal -u root -p{R} orders",
    ),
    (
        "exec: mysqldump -uroot -p'My S3cret' --all-databases",
        f"exec: mysqldump -uroot -p'{R}' --all-databases",
    ),
    (f'mariadb -p"{MYSQL_PW}" -h db', f'mariadb -p"{R}" -h db'),
    (f"mysql --password={MYSQL_PW} -h db", f"mysql --password={R} -h db"),
    (
        f"mysqladmin -u root --password {MYSQL_PW} status",
        f"mysqladmin -u root --password {R} status",
    ),
    # An AWS secret access key alone on a line (credentials files, pasted output).
    (AWS_SECRET, "[REDACTED:aws-secret-key]"),
    (f"    {AWS_SECRET_2}", "    [REDACTED:aws-secret-key]"),
    (
        f"\t\t\t\t\t\t\t\t\t\t{AWS_SECRET}          ",
        "\t" * 10 + "[REDACTED:aws-secret-key]" + " " * 10,
    ),
    (f"<auth>{DOCKER_AUTH}</auth>", f"<auth>{R}</auth>"),
]

KEPT: list[str] = [
    "connect to db.internal:5432 took 12.3 ms",
    "request_id=8f14e45fceea167a5a36dedd4bea2543",
    "token expired for agent ag_123",
    'password authentication failed for user "app"',
    'FATAL:  password authentication failed for user "postgres"',
    "config_hash=sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "agent 3fa85f64-5717-4562-b3fc-2c963f66afa6 connected from 10.0.4.17:51234",
    "heartbeat ok agent=ag_123 seq=4411 rtt=1.8ms interval=5s",
    "probe tcp db.internal:5432 refused after 0.4 ms (ECONNREFUSED)",
    "probe tls api.example.com:443 dns=2.1ms tcp=11.0ms tls=38.4ms "
    "cert_not_after=2026-12-01T00:00:00Z",
    "Access denied for user 'app'@'10.0.0.7' (using password: YES)",
    "invalid token: signature mismatch",
    "refresh token: expired",
    "enrollment token rejected: already used (agent ag_42)",
    "enroll failed: token expired at 2026-11-20T10:00:00Z; ask an operator for a new one",
    "token_ttl=3600 token_type=Bearer token_expires_at=2026-11-28T00:00:00Z",
    "token_file=/etc/fleet/enroll.token password_min_length=12",
    "fleet agent enroll --server https://cp.example.com:8443 --token-file /run/creds/token",
    "secret_name=db-credentials namespace=fleet",
    "password=<nil> token=${FLEET_API_TOKEN} api_key=*** secret=<redacted>",
    "password: null",
    "postgres://app@db.internal:5432/app?sslmode=verify-full",
    "https://cp.example.com:8443/v1/agents/ag_123/logs?lines=200",
    "oci://registry.example.com:5000/fleet/agent@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "authorization failed for agent ag_7: certificate revoked",
    "401 Unauthorized: missing Authorization header",
    "X-Request-Id: 8f14e45fceea167a5a36dedd4bea2543",
    "Bearer token missing from request",
    'ws closed code=1006 reason="abnormal closure" reconnect_in=3.2s attempt=4',
    "queue_depth=3 cpu_pct=1.2 rss_mb=24.1 mem_used_pct=61.0 uptime_s=86400",
    "renew certificate at 2026-12-10T08:00:00Z (2/3 of lifetime)",
    "-----BEGIN CERTIFICATE-----",
    "failed to parse key file /var/lib/fleet/agent.key: "
    "expected '-----BEGIN PRIVATE KEY-----' header",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ops@bastion",
    "commit 3f2a9c1e7d0b4a5c6e8f9a0b1c2d3e4f5a6b7c8d by alice",
    "password reset email sent to user 1042",
    "secret: not found",
    "api_key: not set",
    "warning: --token is deprecated, use --token-file",
    "exec: psql --password -h db.internal -U app",
    "Authorization: denied for agent ag_9",
    "error: token: expired at 10:00",
    "grant_type=client_credentials scope=fleet.read",
    "idempotency_key=5f0c2a cache_key=agents:list partition_key=7",
    "secrets manager unavailable, retrying in 2.0s",
    # "auth" names a method unless its value looks like a credential.
    "auth: ldap",
    "auth=kerberos method=gssapi",
    '{"auth": "none", "tls": true}',
    "oauth: enabled",
    "fleet-proxy --auth basic --listen 127.0.0.1:3128",
    "<auth>ldap</auth>",
    "auth_method=ldap auth_failures=3",
    # -p is a port or a prompt outside MySQL clients, and a prompt alone inside them.
    "mysql -h db.internal -P3306 -u app -p orders",
    "docker run -p8080:80 nginx",
    "ssh -p2222 ops@bastion",
    "mkdir -p /var/lib/fleet",
    # 40 hex digits alone on a line are a SHA-1 (a git commit), not an AWS secret key.
    "3f2a9c1e7d0b4a5c6e8f9a0b1c2d3e4f5a6b7c8d",
    "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709",
    "abcdefghijklmnopqrstuvwxyzabcdefghijklmn",
    "",
    "   ",
]
