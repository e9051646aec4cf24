--
-- PostgreSQL database dump
--

\restrict J3qa1V804JtmblWYtJuMKJ9DYfSuaSfxniHCc6kAo1VzcsNutl9AswraHxvpqpu

SET statement_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);

--
-- Name: app; Type: SCHEMA; Schema: -; Owner: app
--

CREATE SCHEMA app;


ALTER SCHEMA app OWNER TO app;

--
-- Name: citext; Type: EXTENSION; Schema: -; Owner: -
--

CREATE EXTENSION IF NOT EXISTS citext WITH SCHEMA public;

--
-- Name: touch(); Type: FUNCTION; Schema: app; Owner: app
--

CREATE FUNCTION app.touch() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  ALTER TABLE x OWNER TO app; -- in a body
  NEW.note := 'it''s; GRANT ALL ON t TO readonly;';
  RETURN NEW;
END $$;


ALTER FUNCTION app.touch() OWNER TO app;

CREATE FUNCTION public.f() RETURNS integer
    LANGUAGE sql
    BEGIN ATOMIC
 SELECT 1;
END;


ALTER FUNCTION public.f() OWNER TO postgres;

--
-- Name: users; Type: TABLE; Schema: app; Owner: app
--

CREATE TABLE app.users (
    id bigint NOT NULL,
    note text DEFAULT E'a\';b'::text
);


ALTER TABLE app.users OWNER TO app;

--
-- Data for Name: users; Type: TABLE DATA; Schema: app; Owner: app
--

COPY app.users (id, note) FROM stdin;
1	--
2	\\.
7	GRANT SELECT ON t TO readonly;
8	ALTER TABLE app.users OWNER TO app;
\.


--
-- Name: users p; Type: POLICY; Schema: app; Owner: app
--

CREATE POLICY p ON app.users FOR SELECT TO readonly, app USING ((id > 0));

--
-- Name: SCHEMA app; Type: ACL; Schema: -; Owner: app
--

GRANT USAGE ON SCHEMA app TO readonly;


--
-- Name: TABLE users; Type: ACL; Schema: app; Owner: app
--

REVOKE ALL ON TABLE app.users FROM app;
GRANT ALL ON TABLE app.users TO app;
GRANT SELECT(note) ON TABLE app.users TO readonly;
SET SESSION AUTHORIZATION postgres;
GRANT SELECT ON TABLE app.users TO readonly WITH GRANT OPTION;
RESET SESSION AUTHORIZATION;


--
-- Name: DEFAULT PRIVILEGES FOR TABLES; Type: DEFAULT ACL; Schema: app; Owner: app
--

ALTER DEFAULT PRIVILEGES FOR ROLE app IN SCHEMA app GRANT SELECT ON TABLES  TO readonly;


--
-- PostgreSQL database dump complete
--

\unrestrict Q5mRK9Ck4HD9GZXOhC0BCrHIgXxJjGt48TB7gKJz2Mt5q3YLazcZTLlfFVc0xQH

