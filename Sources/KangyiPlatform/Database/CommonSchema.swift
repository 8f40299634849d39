/// Schema `common`: reference data every service reads — the city's districts and counties, the departments
/// cases are assigned to, and the help categories citizens choose from. Only these migrations write it.
public enum CommonSchema {
    public static let migrations: [Migration] = [
        Migration(
            schema: "common", version: 1, name: "reference data",
            statements: [
                "CREATE SCHEMA IF NOT EXISTS common",
                "CREATE EXTENSION IF NOT EXISTS pg_trgm",
                """
                CREATE TABLE common.districts (
                    code text PRIMARY KEY CHECK (code ~ '^[0-9]{6}$'),
                    name text NOT NULL UNIQUE,
                    name_en text NOT NULL UNIQUE,
                    kind text NOT NULL CHECK (kind IN ('urban', 'outlying')))
                """,
                """
                INSERT INTO common.districts (code, name, name_en, kind) VALUES
                    ('420102', '江岸区', 'Jiang''an', 'urban'),
                    ('420103', '江汉区', 'Jianghan', 'urban'),
                    ('420104', '硚口区', 'Qiaokou', 'urban'),
                    ('420105', '汉阳区', 'Hanyang', 'urban'),
                    ('420106', '武昌区', 'Wuchang', 'urban'),
                    ('420107', '青山区', 'Qingshan', 'urban'),
                    ('420111', '洪山区', 'Hongshan', 'urban'),
                    ('420112', '东西湖区', 'Dongxihu', 'outlying'),
                    ('420113', '汉南区', 'Hannan', 'outlying'),
                    ('420114', '蔡甸区', 'Caidian', 'outlying'),
                    ('420115', '江夏区', 'Jiangxia', 'outlying'),
                    ('420116', '黄陂区', 'Huangpi', 'outlying'),
                    ('420117', '新洲区', 'Xinzhou', 'outlying')
                """,
                """
                CREATE TABLE common.departments (
                    code text PRIMARY KEY CHECK (code ~ '^[a-z][a-z0-9_]*$'),
                    name text NOT NULL UNIQUE,
                    name_en text NOT NULL UNIQUE)
                """,
                """
                INSERT INTO common.departments (code, name, name_en) VALUES
                    ('health_commission', '市卫生健康委员会', 'Municipal Health Commission'),
                    ('public_security', '市公安局', 'Public Security Bureau'),
                    ('commerce', '市商务局', 'Commerce Bureau'),
                    ('market_supervision', '市市场监督管理局', 'Market Supervision Administration'),
                    ('transport', '市交通运输局', 'Transport Bureau'),
                    ('education', '市教育局', 'Education Bureau'),
                    ('civil_affairs', '市民政局', 'Civil Affairs Bureau'),
                    ('district_office', '区疫情防控指挥部', 'District Epidemic Command Office')
                """,
                """
                CREATE TABLE common.help_categories (
                    code text PRIMARY KEY CHECK (code ~ '^[a-z][a-z0-9_]*$'),
                    name text NOT NULL UNIQUE,
                    name_en text NOT NULL UNIQUE,
                    -- the department that usually takes such a case
                    default_department text NOT NULL REFERENCES common.departments (code),
                    sort_order integer NOT NULL UNIQUE)
                """,
                """
                INSERT INTO common.help_categories (code, name, name_en, default_department, sort_order) VALUES
                    ('epidemic_policy', '防疫政策', 'Epidemic policy', 'health_commission', 1),
                    ('transport', '交通出行', 'Transport', 'transport', 2),
                    ('medical', '就医购药', 'Medical advice and medicine', 'health_commission', 3),
                    ('education', '学生教育', 'Student education', 'education', 4),
                    ('food_supply', '生活物资', 'Food supply', 'commerce', 5),
                    ('health_code', '健康码', 'Health code', 'public_security', 6),
                    ('other', '其他', 'Other', 'district_office', 7)
                """,
            ])
    ]
}
